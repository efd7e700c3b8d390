// The part every interop server shares: a ws server on 127.0.0.1 on a free
// port, which prints "LISTENING <port>" as the first line on stdout (the Go
// test reads it) and exits when stdin closes or on SIGTERM/SIGINT.

import { WebSocketServer } from "ws";

// listen starts the server with the given ws options and returns it; the
// caller adds its "connection" handler.
export function listen(options = {}) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, ...options });
  let stopping = false;
  const stop = (code = 0) => {
    if (stopping) return;
    stopping = true;
    for (const client of wss.clients) client.terminate();
    wss.close(() => process.exit(code));
    // Do not hang on anything that refuses to close.
    setTimeout(() => process.exit(code), 2000).unref();
  };
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
  process.stdin.on("end", () => stop(0));
  process.stdin.on("close", () => stop(0));
  process.stdin.on("error", () => stop(0));
  process.stdin.resume();
  wss.on("error", (err) => {
    console.error(`server error: ${err.message}`);
    stop(1);
  });
  wss.on("listening", () => process.stdout.write(`LISTENING ${wss.address().port}\n`));
  return wss;
}
