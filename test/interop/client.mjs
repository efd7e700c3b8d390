// Interoperability client: drives a wsrpc example server (the contract served by
// examples/api at /rpc) with the third-party json-rpc-2.0 package over ws.
//
// Usage: node client.mjs ws://127.0.0.1:PORT/rpc
//
// Prints one line per check ("ok - name" or "FAIL - name: detail") and a final
// line "N passed, M failed". Exits non-zero if any check failed.

import { isDeepStrictEqual } from "node:util";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import {
  JSONRPCClient,
  JSONRPCErrorException,
  JSONRPCServer,
  JSONRPCServerAndClient,
} from "json-rpc-2.0";

const url = process.argv[2];
if (!url) {
  console.error("usage: node client.mjs ws://127.0.0.1:PORT/rpc");
  process.exit(2);
}

const CHECK_TIMEOUT_MS = 5000;
const TOTAL_BUDGET_MS = 25000;

let passed = 0;
let failed = 0;
let finished = false;

const deadline = setTimeout(() => {
  console.log(`FAIL - overall: script exceeded ${TOTAL_BUDGET_MS} ms`);
  failed++;
  finish();
}, TOTAL_BUDGET_MS);

process.on("exit", (code) => {
  if (!finished) {
    // The event loop drained before all checks ran; never report success then.
    console.log(`FAIL - overall: exited early (code ${code})`);
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exitCode = 1;
  }
});

function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

// ---------- small assertion helpers (single-line messages) ----------

function show(v) {
  let s;
  try {
    s = JSON.stringify(v);
  } catch {
    s = String(v);
  }
  if (s === undefined) s = String(v);
  return s.length > 160 ? `${s.slice(0, 160)}… (${s.length} chars)` : s;
}

function eq(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Error(`${what}: got ${show(actual)}, want ${show(expected)}`);
  }
}

function truthy(cond, what) {
  if (!cond) throw new Error(what);
}

async function rejectsWith(promise, what) {
  try {
    const v = await promise;
    throw new Error(`${what}: expected an error, got result ${show(v)}`);
  } catch (e) {
    if (e instanceof JSONRPCErrorException) return e;
    throw e;
  }
}

function errShape(e) {
  const o = { code: e.code, message: e.message };
  if (e.data !== undefined) o.data = e.data;
  return o;
}

async function check(name, fn, timeoutMs = CHECK_TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    const note = await Promise.race([Promise.resolve().then(fn), timeout]);
    console.log(`ok - ${name}${note ? ` (${note})` : ""}`);
    passed++;
  } catch (e) {
    const msg = (e && e.message ? e.message : String(e)).replace(/\s+/g, " ");
    console.log(`FAIL - ${name}: ${msg}`);
    failed++;
  } finally {
    clearTimeout(timer);
  }
}

// Numeric literals of a JSON text, as written (outside of strings).
function numberTokens(text) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
    } else if (c === "-" || (c >= "0" && c <= "9")) {
      const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(
        text.slice(i),
      );
      if (!m) throw new Error(`bad number at ${i}`);
      out.push(m[0]);
      i += m[0].length;
    } else {
      i++;
    }
  }
  return out;
}

// ---------- connection and peer ----------

const frames = []; // every text frame received, in arrival order
const rawWaiters = new Set();
const protocolProblems = [];

const ws = new WebSocket(url, { maxPayload: 64 << 20 });

// Ids of the requests we sent (JSON text of the id -> replies seen), so that
// any reply to something we did not ask, or a second reply, is noticed.
const sentIDs = new Map();

function noteSent(payload) {
  for (const m of Array.isArray(payload) ? payload : [payload]) {
    if (m && typeof m === "object" && "method" in m && m.id !== undefined) {
      sentIDs.set(JSON.stringify(m.id), 0);
    }
  }
}

function noteReplies(parsed) {
  for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
    if (!m || typeof m !== "object" || "method" in m) continue;
    const key = JSON.stringify(m.id);
    const seen = sentIDs.get(key);
    if (seen === undefined) {
      protocolProblems.push(`reply to a request never sent: ${show(m)}`);
    } else {
      if (seen > 0) protocolProblems.push(`second reply for id ${key}: ${show(m)}`);
      sentIDs.set(key, seen + 1);
    }
  }
}

function sendPayload(payload) {
  noteSent(payload);
  return new Promise((resolve, reject) => {
    ws.send(JSON.stringify(payload), (err) => (err ? reject(err) : resolve()));
  });
}

function sendRaw(text) {
  try {
    noteSent(JSON.parse(text));
  } catch {
    /* invalid JSON on purpose */
  }
  return new Promise((resolve, reject) => {
    ws.send(text, (err) => (err ? reject(err) : resolve()));
  });
}

// Resolves with the first frame (raw text) received after this call whose
// parsed form satisfies pred.
function waitFrame(pred) {
  return new Promise((resolve) => {
    rawWaiters.add({ pred, resolve });
  });
}

function hasID(id) {
  return (parsed) =>
    Array.isArray(parsed)
      ? parsed.some((r) => r && r.id === id)
      : parsed !== null && typeof parsed === "object" && parsed.id === id;
}

const peer = new JSONRPCServerAndClient(
  // Handlers below throw on purpose; keep the server quiet about it.
  new JSONRPCServer({ errorListener: () => {} }),
  new JSONRPCClient(sendPayload),
  {
    errorListener: (message, data) =>
      protocolProblems.push(`${message}: ${show(data)}`),
  },
);

ws.on("message", (data, isBinary) => {
  if (isBinary) {
    protocolProblems.push("received a binary frame");
    return;
  }
  const text = data.toString("utf8");
  frames.push(text);
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    protocolProblems.push(`unparsable frame: ${show(text)}`);
    return;
  }
  noteReplies(parsed);
  for (const w of rawWaiters) {
    if (w.pred(parsed)) {
      rawWaiters.delete(w);
      w.resolve(text);
    }
  }
  peer.receiveAndSend(parsed).catch(() => {
    /* already recorded by errorListener */
  });
});

ws.on("close", () => peer.rejectAllPendingRequests("connection closed"));
ws.on("error", (err) => protocolProblems.push(`websocket error: ${err.message}`));

// ---------- methods the server calls back on us (reverse.call / reverse.notify) ----------

const reverseSeen = []; // params of every client.* invocation, by method
const notes = [];

peer.addMethod("client.mul", (params) => {
  reverseSeen.push({ method: "client.mul", params });
  const [a, b] = params;
  return a * b;
});
peer.addMethod("client.greet", (params) => {
  reverseSeen.push({ method: "client.greet", params });
  return `hello ${params.name} from node`;
});
peer.addMethod("client.fail", () => {
  throw new JSONRPCErrorException("client refused", -32099, {
    why: "testing",
    n: 7,
  });
});
peer.addMethod("client.fail.nodata", () => {
  throw new JSONRPCErrorException("plain refusal", 4004);
});
peer.addMethod("client.note", (params) => {
  notes.push(params);
});
peer.addMethod("client.delayed", (params) => {
  return new Promise((resolve) => setTimeout(() => resolve(params.v), params.ms));
});
peer.addMethod("client.nested", async (params) => {
  // Re-entrant: call the server while the server is waiting on us.
  const diff = await peer.request("subtract", [params.a, params.b]);
  return { diff };
});

// ---------- checks ----------

async function run() {
  await check("connect", async () => {
    if (ws.readyState === WebSocket.OPEN) return;
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
  });
  if (ws.readyState !== WebSocket.OPEN) return;

  await check("subtract with positional params", async () => {
    eq(await peer.request("subtract", [42, 23]), 19, "subtract [42,23]");
    eq(await peer.request("subtract", [23, 42]), -19, "subtract [23,42]");
  });

  await check("subtract with named params", async () => {
    eq(
      await peer.request("subtract", { subtrahend: 23, minuend: 42 }),
      19,
      "subtract {subtrahend:23, minuend:42}",
    );
    eq(
      await peer.request("subtract", { minuend: 42, subtrahend: 23 }),
      19,
      "subtract {minuend:42, subtrahend:23}",
    );
  });

  await check("sum and math.sum", async () => {
    eq(await peer.request("sum", [1, 2, 4]), 7, "sum [1,2,4]");
    eq(await peer.request("math.sum", [2, 3]), 5, "math.sum [2,3]");
  });

  await check("get_data", async () => {
    eq(await peer.request("get_data"), ["hello", 5], "get_data");
  });

  await check("update / notify_hello / notify_sum called with an id return null", async () => {
    eq(await peer.request("update", [1, 2, 3, 4, 5]), null, "update");
    eq(await peer.request("notify_hello", [7]), null, "notify_hello");
    eq(await peer.request("notify_sum", [1, 2, 4]), null, "notify_sum");
  });

  await check("notifications get no reply (even unknown methods / bad params)", async () => {
    const before = frames.length;
    peer.notify("update", [1, 2, 3, 4, 5]);
    peer.notify("notify_hello", [7]);
    peer.notify("notify_sum", [1, 2, 4]);
    peer.notify("no.such.notification", [1]);
    peer.notify("subtract", ["not", "numbers"]);
    // Follow-up requests: their replies must be the only frames we see. The
    // second round trip catches a wrong reply that came late.
    const pingTexts = [];
    for (const id of ["ping-notify-1", "ping-notify-2"]) {
      const pingReply = waitFrame(hasID(id));
      const resp = await peer.requestAdvanced({ jsonrpc: "2.0", id, method: "get_data" });
      eq(resp.result, ["hello", 5], "follow-up get_data");
      pingTexts.push(await pingReply);
    }
    const extra = frames.slice(before).filter((f) => !pingTexts.includes(f));
    eq(extra, [], "frames other than the follow-up replies");
  });

  await check("echo positional and named params unchanged", async () => {
    const pos = [1, "two", [3, { four: 4 }], null, true, false, -0.5, 1e-7];
    eq(await peer.request("echo", pos), pos, "echo array");
    const named = {
      text: "ünïcødé \u2028 \"quoted\" \\ back\nslash \u0001 😀",
      nested: { empty: {}, list: [], deep: { deeper: [1, [2, [3]]] } },
      num: 12345.678,
    };
    eq(await peer.request("echo", named), named, "echo object");
  });

  await check("batch (calls, notification, errors) answered as one array frame", async () => {
    const reqs = [
      { jsonrpc: "2.0", id: "b1", method: "sum", params: [1, 2, 4] },
      { jsonrpc: "2.0", method: "notify_hello", params: [7] },
      { jsonrpc: "2.0", id: "b2", method: "subtract", params: [42, 23] },
      { jsonrpc: "2.0", id: "b3", method: "foobar", params: { name: "myself" } },
      { jsonrpc: "2.0", id: "b4", method: "get_data" },
      { jsonrpc: "2.0", id: "b5", method: "fail", params: { code: -32001, message: "in batch" } },
    ];
    const rawReply = waitFrame(hasID("b1"));
    const res = await peer.requestAdvanced(reqs);
    truthy(Array.isArray(res), `batch result is not an array: ${show(res)}`);
    const byID = Object.fromEntries(res.map((r) => [r.id, r]));
    eq(byID.b1.result, 7, "b1 sum");
    eq(byID.b2.result, 19, "b2 subtract");
    eq(byID.b3.error && byID.b3.error.code, -32601, "b3 foobar error code");
    eq(byID.b4.result, ["hello", 5], "b4 get_data");
    eq(byID.b5.error, { code: -32001, message: "in batch" }, "b5 fail error");
    const raw = JSON.parse(await rawReply);
    truthy(Array.isArray(raw), "reply frame is not an array");
    eq(
      raw.map((r) => r.id).sort(),
      ["b1", "b2", "b3", "b4", "b5"],
      "ids in the single reply frame (no entry for the notification)",
    );
  });

  await check("one-element batch is answered with a one-element array", async () => {
    const rawReply = waitFrame(hasID("solo"));
    const res = await peer.requestAdvanced([
      { jsonrpc: "2.0", id: "solo", method: "subtract", params: [5, 3] },
    ]);
    eq(res.map((r) => r.result), [2], "result");
    const raw = JSON.parse(await rawReply);
    truthy(Array.isArray(raw) && raw.length === 1, `reply frame is ${show(raw)}`);
  });

  await check("fail: error code, message and data intact", async () => {
    const data = { reason: "because", list: [1, "two", null], nested: { ok: false } };
    const e = await rejectsWith(
      peer.request("fail", { code: -32050, message: "custom failure", data }),
      "fail",
    );
    eq(errShape(e), { code: -32050, message: "custom failure", data }, "error");
    const e2 = await rejectsWith(
      peer.request("fail", { code: 4001, message: "application code", data: "just a string" }),
      "fail",
    );
    eq(errShape(e2), { code: 4001, message: "application code", data: "just a string" }, "error");
  });

  await check("fail without data: no data member in the error", async () => {
    const rawReply = waitFrame(hasID("nodata"));
    const resp = await peer.requestAdvanced({
      jsonrpc: "2.0",
      id: "nodata",
      method: "fail",
      params: { code: -32051, message: "no data here" },
    });
    eq(resp.error, { code: -32051, message: "no data here" }, "error");
    const raw = JSON.parse(await rawReply);
    truthy(!("data" in raw.error), `raw error has a data member: ${show(raw.error)}`);
    truthy(!("result" in raw), `raw error response also has a result member: ${show(raw)}`);
  });

  await check("unknown method: -32601", async () => {
    const e = await rejectsWith(peer.request("no.such.method", [1]), "no.such.method");
    eq(e.code, -32601, "code");
    const e2 = await rejectsWith(peer.request("foobar"), "foobar");
    eq(e2.code, -32601, "code");
  });

  await check("wrong params: -32602", async () => {
    const e = await rejectsWith(peer.request("subtract", ["a", "b"]), "subtract [a,b]");
    eq(e.code, -32602, "code");
    const e2 = await rejectsWith(peer.request("sleep", { ms: "long" }), "sleep {ms:'long'}");
    eq(e2.code, -32602, "code");
  });

  await check('"params": 5 is an invalid request (-32600) that echoes the id', async () => {
    const resp = await peer.requestAdvanced({
      jsonrpc: "2.0",
      id: "params-5",
      method: "echo",
      params: 5,
    });
    eq(resp.id, "params-5", "id");
    eq(resp.error && resp.error.code, -32600, "code");
  });

  await check("parallel sleeps overlap (5 x 200 ms)", async () => {
    const t0 = performance.now();
    const rs = await Promise.all(
      Array.from({ length: 5 }, () => peer.request("sleep", { ms: 200 })),
    );
    const elapsed = performance.now() - t0;
    eq(rs, [200, 200, 200, 200, 200], "results");
    truthy(elapsed >= 195, `finished too early: ${elapsed.toFixed(0)} ms`);
    truthy(elapsed < 1000, `took ${elapsed.toFixed(0)} ms; calls did not overlap`);
    return `${elapsed.toFixed(0)} ms total`;
  });

  await check("replies can overtake earlier slow calls", async () => {
    const order = [];
    await Promise.all([
      peer.request("sleep", { ms: 400 }).then((v) => order.push(v)),
      peer.request("sleep", { ms: 10 }).then((v) => order.push(v)),
    ]);
    eq(order, [10, 400], "completion order");
  });

  await check("1 MiB echo", async () => {
    const block = "abcdefghijklmnopqrstuvwxyz0123456789 \"\\\n\t/é€😀<>&'";
    let blob = block.repeat(Math.ceil((1 << 20) / block.length) + 1);
    blob = blob.slice(0, 1 << 20);
    const bytes = Buffer.byteLength(blob, "utf8");
    truthy(bytes >= 1 << 20, `payload only ${bytes} bytes`);
    const got = await peer.request("echo", { blob });
    truthy(typeof got.blob === "string", `echo returned ${show(got)}`);
    eq(got.blob.length, blob.length, "echoed length");
    truthy(got.blob === blob, "echoed string differs");
    return `${bytes} bytes of UTF-8`;
  });

  await check(
    "echo keeps integers beyond float64 exact (checked on the raw ws frame: json-rpc-2.0 " +
      "cannot carry them, it uses JSON.parse/JSON.stringify, which turn " +
      `18446744073709551615 into ${String(JSON.parse("18446744073709551615"))})`,
    async () => {
      const sent = [
        "18446744073709551615",
        "-9223372036854775809",
        "9007199254740993",
        "123456789012345678901234567890",
      ];
      const text =
        `{"jsonrpc":"2.0","id":"bigint","method":"echo","params":` +
        `{"u64max":${sent[0]},"list":[${sent.slice(1).join(",")}]}}`;
      const reply = waitFrame(hasID("bigint"));
      await sendRaw(text);
      const got = await reply;
      const parsed = JSON.parse(got);
      truthy(!parsed.error, `error reply: ${show(parsed.error)}`);
      eq(numberTokens(got), sent, "number literals in the raw reply");
      // Proof that the library path would not have been exact.
      truthy(
        String(JSON.parse(sent[0])) !== sent[0],
        "JSON.parse unexpectedly kept 2^64-1 exact",
      );
    },
  );

  await check("reverse.call: server calls a client method with positional params", async () => {
    reverseSeen.length = 0;
    const r = await peer.request("reverse.call", { method: "client.mul", params: [6, 7] });
    eq(r, 42, "result");
    eq(reverseSeen, [{ method: "client.mul", params: [6, 7] }], "what the client method received");
  });

  await check("reverse.call: named params", async () => {
    reverseSeen.length = 0;
    const r = await peer.request("reverse.call", {
      method: "client.greet",
      params: { name: "wsrpc" },
    });
    eq(r, "hello wsrpc from node", "result");
    eq(reverseSeen, [{ method: "client.greet", params: { name: "wsrpc" } }], "what the client method received");
  });

  await check("reverse.call: client error comes back with code, message and data", async () => {
    const e = await rejectsWith(
      peer.request("reverse.call", { method: "client.fail", params: [] }),
      "reverse.call client.fail",
    );
    eq(errShape(e), { code: -32099, message: "client refused", data: { why: "testing", n: 7 } }, "error");
  });

  await check("reverse.call: client error without data", async () => {
    const e = await rejectsWith(
      peer.request("reverse.call", { method: "client.fail.nodata", params: {} }),
      "reverse.call client.fail.nodata",
    );
    eq(errShape(e), { code: 4004, message: "plain refusal" }, "error");
  });

  await check("reverse.call: unknown client method gives json-rpc-2.0's -32601 back", async () => {
    const e = await rejectsWith(
      peer.request("reverse.call", { method: "client.missing", params: [1] }),
      "reverse.call client.missing",
    );
    eq(e.code, -32601, "code");
  });

  await check("reverse.call: parallel calls, replies out of order", async () => {
    const specs = [
      { ms: 150, v: "a" },
      { ms: 100, v: "b" },
      { ms: 50, v: "c" },
      { ms: 0, v: "d" },
    ];
    const rs = await Promise.all(
      specs.map((p) => peer.request("reverse.call", { method: "client.delayed", params: p })),
    );
    eq(rs, ["a", "b", "c", "d"], "results");
  });

  await check("reverse.call: client method calls back into the server (re-entrant)", async () => {
    const r = await peer.request("reverse.call", {
      method: "client.nested",
      params: { a: 10, b: 4 },
    });
    eq(r, { diff: 6 }, "result");
  });

  await check("reverse.notify: notification arrives before the true response", async () => {
    notes.length = 0;
    const r = await peer.request("reverse.notify", {
      method: "client.note",
      params: { seq: 1, text: "hi" },
    });
    eq(r, true, "result");
    eq(notes, [{ seq: 1, text: "hi" }], "notifications received by the time the reply arrived");
  });

  await check("every reply answers exactly one request we sent; no protocol problems", async () => {
    const unanswered = [...sentIDs].filter(([, n]) => n === 0).map(([id]) => id);
    eq(unanswered, [], "requests never answered");
    eq(protocolProblems, [], "problems");
  });

  await check("close", async () => {
    const code = await new Promise((resolve) => {
      ws.once("close", resolve);
      ws.close(1000, "done");
    });
    truthy(code === 1000 || code === 1005, `close code ${code}`);
  });
}

run().then(finish, (e) => {
  console.log(`FAIL - overall: ${e && e.stack ? e.stack : e}`);
  failed++;
  finish();
});
