// Interoperability server for wire cancellation: a vscode-jsonrpc peer over
// ws (through the adapters in vscode_ws.mjs), for wsrpc's Go client to call
// and cancel with "$/cancelRequest".
//
// Usage: node vscode_server.mjs
//
// Listens on 127.0.0.1 on a free port and prints "LISTENING <port>" as the
// first line on stdout. Exits when stdin closes or on SIGTERM/SIGINT.
//
// Methods served on every connection (state is per connection):
//   slow    {tag}  -> first notifies the peer "started" {tag}, then waits
//                     until its CancellationToken fires or "release" {tag}.
//                     Cancelled: notifies the peer "sawCancel" {tag}, records
//                     tag, and answers error -32800 (RequestCancelled).
//                     Released: answers {released: tag}.
//   release {tag}  -> ends a waiting slow {tag}; returns {found, cancelled}:
//                     whether one was waiting, and whether its token had
//                     been cancelled by then
//   report         -> {cancelled: [tag...], wire: [{dir, msg}...]}: the tags
//                     of the slow calls that saw their token cancelled, and
//                     every frame of this connection so far, in order, dir
//                     "<--" for received and "-->" for sent, msg parsed
//   ping           -> "pong"

import { listen } from "./listen.mjs";
import { connect, RequestCancelled, ResponseError } from "./vscode_ws.mjs";

const wss = listen();

const logger = {
  error: (m) => console.error(`vscode-jsonrpc error: ${m}`),
  warn: (m) => console.error(`vscode-jsonrpc warn: ${m}`),
  info: () => {},
  log: () => {},
};

wss.on("connection", (ws) => {
  const wire = [];
  const cancelled = [];
  const waiting = new Map(); // tag -> {token, release}

  const conn = connect(
    ws,
    (dir, text) => wire.push({ dir, msg: JSON.parse(text) }),
    logger,
  );

  conn.onRequest("slow", async ({ tag }, token) => {
    await conn.sendNotification("started", { tag });
    const how = await new Promise((resolve) => {
      if (token.isCancellationRequested) {
        resolve("cancelled");
        return;
      }
      const sub = token.onCancellationRequested(() => {
        sub.dispose();
        resolve("cancelled");
      });
      waiting.set(tag, { token, release: () => resolve("released") });
    });
    waiting.delete(tag);
    if (how === "released") return { released: tag };
    cancelled.push(tag);
    await conn.sendNotification("sawCancel", { tag });
    throw new ResponseError(RequestCancelled, `slow ${tag} cancelled`);
  });

  conn.onRequest("release", ({ tag }) => {
    const w = waiting.get(tag);
    if (!w) return { found: false, cancelled: false };
    const wasCancelled = w.token.isCancellationRequested;
    w.release();
    return { found: true, cancelled: wasCancelled };
  });

  conn.onRequest("report", () => ({
    cancelled: cancelled.slice(),
    wire: wire.slice(),
  }));

  conn.onRequest("ping", () => "pong");

  ws.on("close", () => conn.dispose());
  ws.on("error", (err) => console.error(`connection error: ${err.message}`));
  conn.listen();
});
