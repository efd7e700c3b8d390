// Interoperability client for wire cancellation: connects vscode-jsonrpc
// (through the adapters in vscode_ws.mjs) to a wsrpc server and cancels a
// request the Go handler is working on.
//
// Usage: node vscode_client.mjs ws://127.0.0.1:PORT/rpc cancel|release
//
// The server must serve "slow" {tag}, which notifies "started" {tag} and
// then waits; "release" {tag}, which ends a waiting slow call; and "ended",
// which waits until slow's handler has returned and says how it ended. The
// client sends slow {tag: "vscode"} with a CancellationToken, and once
// "started" arrives cancels the token (vscode-jsonrpc sends
// "$/cancelRequest"). With "release" it then also calls release {tag}. Once
// slow is answered it calls ended, still on the same connection.
//
// Prints JSON lines on stdout: {"dir": "-->"|"<--", "msg": frame} for every
// frame sent or received, in order, then one {"outcome": {...}} with what
// slow, release and ended returned ({"result": ...} or {"error": {code,
// message}}) and what vscode-jsonrpc logged. Exits 0 whenever it got that
// far.

import WebSocket from "ws";
import { CancellationTokenSource, connect } from "./vscode_ws.mjs";

const [url, mode] = process.argv.slice(2);
if (!url || (mode !== "cancel" && mode !== "release")) {
  console.error("usage: node vscode_client.mjs ws://127.0.0.1:PORT/rpc cancel|release");
  process.exit(2);
}

const out = (v) => process.stdout.write(`${JSON.stringify(v)}\n`);
const logged = [];
const logger = {
  error: (m) => logged.push(`error: ${m}`),
  warn: (m) => logged.push(`warn: ${m}`),
  info: () => {},
  log: () => {},
};

// A safety net only: the Go test bounds the whole run as well.
const safety = setTimeout(() => {
  out({ outcome: { error: "vscode_client.mjs: no outcome within 25 s", logged } });
  process.exit(1);
}, 25000);

function settle(p) {
  return p.then(
    (result) => ({ result }),
    (e) => ({ error: { code: e.code, message: e.message } }),
  );
}

const ws = new WebSocket(url);
await new Promise((resolve, reject) => {
  ws.once("open", resolve);
  ws.once("error", reject);
});

const conn = connect(ws, (dir, text) => out({ dir, msg: JSON.parse(text) }), logger);
const source = new CancellationTokenSource();
const started = new Promise((resolve) => conn.onNotification("started", resolve));
conn.listen();

const slow = settle(conn.sendRequest("slow", { tag: "vscode" }, source.token));
await started;
source.cancel();
const outcome = {};
if (mode === "release") {
  outcome.release = await settle(conn.sendRequest("release", { tag: "vscode" }));
}
outcome.slow = await slow;
outcome.ended = await settle(conn.sendRequest("ended"));
outcome.logged = logged;
out({ outcome });

clearTimeout(safety);
conn.dispose();
ws.close(1000, "done");
await new Promise((resolve) => ws.once("close", resolve));
