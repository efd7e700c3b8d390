// wsrpc's stream protocol, written from the "Streams" section of wsrpc's
// doc.go alone, with plain ws and hand-rolled JSON-RPC messages (no JSON-RPC
// library): the point is that the documented wire is enough for another
// language, in both roles.
//
// What this implementation takes from the doc, and how it reads it:
//   - subscribe: a call of the stream's name; its result is the id (a string
//     chosen by the serving side).
//   - $/stream.credit {id, n, bytes}: adds n values and bytes bytes; n = -1
//     lifts the limit (sent without bytes). The subscriber sends the first
//     credit once it has the id. The doc does not say what a byte is; here it
//     is the UTF-8 length of a whole $/stream.next message, which is what
//     "may overshoot the bytes by one message" suggests.
//   - $/stream.next {id, value}: sent while there is a value and any bytes of
//     credit left; nothing before the first credit.
//   - $/stream.end {id, error?}: the last message; error is {code, message,
//     data}. Not sent before the first credit either.
//   - $/stream.cancel {id}: unsubscribe; no end follows (the doc does not
//     promise one), and values already on their way are ignored.
//
// Usage:
//
//   node streams.mjs subscribe <url> <config JSON>
//     Subscribes to the stream config.method with config.params, whose
//     values are {n, text}: n counts from 0 and text has config.params.size
//     characters. config.credit is "block" (grant config.window values and
//     config.windowBytes bytes, take values only when that much is held or
//     the end came, and give the credit back in batches of half the window)
//     or "unlimited" (n = -1). config.cancelAfter: unsubscribe after that
//     many values. config.after {method, params}: a normal call made once
//     the stream is over (ended or cancelled). Prints one JSON line (see
//     report below) and exits.
//
//   node streams.mjs serve
//     Listens on 127.0.0.1 on a free port, prints "LISTENING <port>" first,
//     and exits when stdin closes. Serves on every connection:
//       feed  {count, size, error?}  a stream of count values {n, text}, then
//                                    the end, with error if given
//       stats {id}                   the serving side's record of stream id,
//                                    answered once it has ended or been
//                                    cancelled
//
// config.trace (or STREAMS_TRACE=1 for serve) logs every frame to stderr.

import { WebSocket } from "ws";
import { listen } from "./listen.mjs";

const NEXT = "$/stream.next";
const END = "$/stream.end";
const CREDIT = "$/stream.credit";
const CANCEL = "$/stream.cancel";

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
const texts = new Map();
function textOf(size) {
  let t = texts.get(size);
  if (t === undefined) {
    t = "";
    for (let i = 0; i < size; i++) t += alphabet[i % alphabet.length];
    texts.set(size, t);
  }
  return t;
}

function tracer(on) {
  if (!on) return () => {};
  return (dir, text) => {
    const s = String(text);
    process.stderr.write(`${dir} ${s.length > 160 ? s.slice(0, 160) + "..." : s}\n`);
  };
}

function parse(data) {
  try {
    return JSON.parse(data.toString("utf8"));
  } catch {
    return undefined;
  }
}

// ---- the subscriber ----

function subscribe(url, cfg) {
  const trace = tracer(cfg.trace);
  const unlimited = cfg.credit === "unlimited";
  const window = cfg.window ?? 64;
  const windowBytes = cfg.windowBytes ?? 1 << 20;
  const size = cfg.params?.size ?? 0;

  const report = {
    id: null,
    values: 0, // values taken, in the order they came
    orderOk: true, // value i had n = i
    textOk: true, // every text had size characters
    ended: false,
    endError: null, // the end's error member, as sent
    maxHeld: 0, // most values received and not yet taken
    maxHeldBytes: 0, // their bytes (whole messages)
    exceeded: false, // a value came with no credit left (doc's rule)
    nextBeforeAnswer: false, // a value came before the subscribe answer
    late: 0, // values received after the cancel
    credits: 0, // credit messages sent
    grantedN: 0, // values granted in all (block)
    subscribeError: null,
    after: null,
    afterError: null,
  };

  const ws = new WebSocket(url, { maxPayload: 64 << 20 });
  let nextID = 1;
  const pending = new Map();
  const send = (msg) => {
    const text = JSON.stringify(msg);
    trace("-->", text);
    ws.send(text);
  };
  const call = (method, params, done) => {
    const id = nextID++;
    pending.set(id, done);
    const msg = { jsonrpc: "2.0", id, method };
    if (params !== undefined && params !== null) msg.params = params;
    send(msg);
  };
  const notify = (method, params) => send({ jsonrpc: "2.0", method, params });

  let sid = null;
  let over = false; // ended or cancelled
  let cancelled = false;
  const held = [];
  let heldBytes = 0;
  let creditN = 0; // what the serving side may still send, by the doc's rule
  let creditBytes = 0;
  let owedN = 0; // taken and not yet given back
  let owedBytes = 0;

  const grant = (n, bytes) => {
    report.credits++;
    if (n < 0) {
      notify(CREDIT, { id: sid, n: -1 });
      return;
    }
    creditN += n;
    creditBytes += bytes;
    report.grantedN += n;
    notify(CREDIT, { id: sid, n, bytes });
  };
  const giveBack = () => {
    if (owedN > 0 && !over) grant(owedN, owedBytes);
    owedN = 0;
    owedBytes = 0;
  };

  let printed = false;
  const finish = () => {
    const print = () => {
      if (printed) return;
      printed = true;
      process.stdout.write(JSON.stringify(report) + "\n");
      ws.close(1000);
    };
    if (!cfg.after) return print();
    call(cfg.after.method, cfg.after.params, (msg) => {
      report.after = msg.result ?? null;
      report.afterError = msg.error ?? null;
      print();
    });
  };

  const cancel = () => {
    cancelled = true;
    over = true;
    report.late += held.length; // taken no more
    held.length = 0;
    heldBytes = 0;
    notify(CANCEL, { id: sid });
    finish();
  };

  // take takes every value held, giving credit back in batches.
  const take = () => {
    while (held.length > 0) {
      const { value, len } = held.shift();
      heldBytes -= len;
      if (value?.n !== report.values) report.orderOk = false;
      if (typeof value?.text !== "string" || value.text.length !== size) report.textOk = false;
      report.values++;
      if (!unlimited) {
        owedN++;
        owedBytes += len;
        if (owedN * 2 >= window || owedBytes * 2 >= windowBytes) giveBack();
      }
      if (cfg.cancelAfter !== undefined && report.values === cfg.cancelAfter && !over) {
        cancel();
        return;
      }
    }
    if (!unlimited) giveBack();
  };

  ws.on("open", () => {
    call(cfg.method, cfg.params, (msg) => {
      if (msg.error !== undefined || typeof msg.result !== "string") {
        report.subscribeError = msg.error ?? { result: msg.result };
        over = true;
        finish();
        return;
      }
      sid = report.id = msg.result;
      if (unlimited) grant(-1);
      else grant(window, windowBytes);
    });
  });

  ws.on("message", (data, isBinary) => {
    trace("<--", data);
    const msg = isBinary ? undefined : parse(data);
    if (msg === undefined || msg === null || typeof msg !== "object" || Array.isArray(msg)) {
      console.error(`unexpected frame: ${data}`);
      process.exitCode = 1;
      return;
    }
    if (msg.method === undefined) {
      const done = pending.get(msg.id);
      pending.delete(msg.id);
      if (done) done(msg);
      return;
    }
    if (msg.id !== undefined) {
      send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "method not found" } });
      return;
    }
    const p = msg.params ?? {};
    switch (msg.method) {
      case NEXT: {
        if (sid === null) {
          report.nextBeforeAnswer = true;
          return;
        }
        if (p.id !== sid) return; // unknown ids are ignored
        if (over) {
          report.late++;
          return;
        }
        const len = data.length;
        if (!unlimited) {
          if (creditN <= 0 || creditBytes <= 0) report.exceeded = true;
          creditN--;
          creditBytes -= len;
        }
        held.push({ value: p.value, len });
        heldBytes += len;
        report.maxHeld = Math.max(report.maxHeld, held.length);
        report.maxHeldBytes = Math.max(report.maxHeldBytes, heldBytes);
        if (unlimited || held.length >= window || heldBytes >= windowBytes) take();
        return;
      }
      case END: {
        if (p.id !== sid || over) return;
        over = true;
        report.ended = true;
        report.endError = p.error ?? null;
        take();
        if (!cancelled) finish();
        return;
      }
      default:
        console.error(`unexpected notification: ${data}`);
        process.exitCode = 1;
    }
  });

  ws.on("error", (err) => {
    console.error(`connection error: ${err.message}`);
    process.exitCode = 1;
  });
  ws.on("close", () => {
    if (!printed) {
      console.error("connection closed before the stream was over");
      process.exitCode = 1;
    }
  });
}

// ---- the serving side ----

function serve() {
  const trace = tracer(process.env.STREAMS_TRACE === "1");
  const wss = listen({ maxPayload: 64 << 20 });

  wss.on("connection", (ws) => {
    const subs = new Map();
    let seq = 0;
    const send = (msg) => {
      const text = JSON.stringify(msg);
      trace("<--", text);
      ws.send(text);
      return text;
    };
    const reply = (id, result) => send({ jsonrpc: "2.0", id, result });
    const fail = (id, code, message) => send({ jsonrpc: "2.0", id, error: { code, message } });

    const record = (s) => ({
      sent: s.sent,
      endSent: s.endSent,
      cancelled: s.cancelled,
      heldBack: s.heldBack,
      sentBeforeCredit: s.sentBeforeCredit,
      exceeded: s.exceeded,
      unlimited: s.unlimited,
      grantedN: s.grantedN,
      credits: s.credits,
      maxUnacked: s.maxUnacked,
    });
    const settle = (s) => {
      for (const id of s.waiters) reply(id, record(s));
      s.waiters = [];
    };

    // sendNext is the only way a value goes out.
    const sendNext = (s) => {
      if (!s.active) s.sentBeforeCredit = true;
      const text = JSON.stringify({
        jsonrpc: "2.0",
        method: NEXT,
        params: { id: s.id, value: { n: s.sent, text: textOf(s.size) } },
      });
      if (!s.unlimited) {
        if (s.creditN <= 0 || s.creditBytes <= 0) s.exceeded = true;
        s.creditN--;
        s.creditBytes -= Buffer.byteLength(text);
      }
      trace("<--", text);
      ws.send(text);
      s.sent++;
      if (!s.unlimited) s.maxUnacked = Math.max(s.maxUnacked, s.sent - (s.grantedN - s.firstN));
    };

    // pump sends what the credit allows, then the end once every value is
    // out. Nothing, not even the end, goes before the first credit.
    const pump = (s) => {
      if (s.cancelled || s.endSent) return;
      if (!s.active) {
        s.heldBack++;
        return;
      }
      while (s.sent < s.count && (s.unlimited || (s.creditN > 0 && s.creditBytes > 0))) sendNext(s);
      if (s.sent === s.count) {
        const params = { id: s.id };
        if (s.error) params.error = s.error;
        send({ jsonrpc: "2.0", method: END, params });
        s.endSent = true;
        settle(s);
      }
    };

    const request = (msg) => {
      const p = msg.params ?? {};
      switch (msg.method) {
        case "feed": {
          if (!Number.isInteger(p.count) || p.count < 0) return fail(msg.id, -32602, "invalid params: count");
          const s = {
            id: `n${++seq}`,
            count: p.count,
            size: p.size ?? 0,
            error: p.error ?? null,
            sent: 0,
            active: false,
            unlimited: false,
            creditN: 0,
            creditBytes: 0,
            grantedN: 0,
            firstN: 0,
            credits: 0,
            heldBack: 0,
            sentBeforeCredit: false,
            exceeded: false,
            maxUnacked: 0,
            endSent: false,
            cancelled: false,
            waiters: [],
          };
          subs.set(s.id, s);
          reply(msg.id, s.id);
          pump(s); // held back: no credit yet
          return;
        }
        case "stats": {
          const s = subs.get(p.id);
          if (!s) return fail(msg.id, -32602, `invalid params: no stream ${p.id}`);
          s.waiters.push(msg.id);
          if (s.endSent || s.cancelled) settle(s);
          return;
        }
        default:
          return fail(msg.id, -32601, "method not found");
      }
    };

    const notification = (msg) => {
      const p = msg.params ?? {};
      const s = subs.get(p.id);
      if (!s) return; // unknown ids are ignored
      switch (msg.method) {
        case CREDIT: {
          s.credits++;
          if (!s.active && p.n >= 0) s.firstN = p.n;
          s.active = true;
          if (p.n < 0) s.unlimited = true;
          else {
            s.creditN += p.n;
            s.creditBytes += p.bytes ?? 0;
            s.grantedN += p.n;
          }
          pump(s);
          return;
        }
        case CANCEL:
          if (s.endSent || s.cancelled) return;
          s.cancelled = true;
          settle(s);
          return;
      }
    };

    ws.on("message", (data, isBinary) => {
      trace("-->", data);
      const msg = isBinary ? undefined : parse(data);
      if (msg === undefined) {
        send({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
        return;
      }
      if (msg === null || typeof msg !== "object" || Array.isArray(msg) || typeof msg.method !== "string") {
        send({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "invalid request" } });
        return;
      }
      if (msg.id === undefined) notification(msg);
      else request(msg);
    });
    ws.on("error", (err) => console.error(`connection error: ${err.message}`));
  });
}

const [mode, ...args] = process.argv.slice(2);
switch (mode) {
  case "subscribe":
    subscribe(args[0], JSON.parse(args[1]));
    break;
  case "serve":
    serve();
    break;
  default:
    console.error("usage: node streams.mjs subscribe <url> <config JSON> | node streams.mjs serve");
    process.exit(2);
}
