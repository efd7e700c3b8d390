// Interoperability server: a json-rpc-2.0 peer (JSONRPCServerAndClient) over
// ws, for wsrpc's Go client to talk to.
//
// Usage: node server.mjs
//
// Listens on 127.0.0.1 on a free port and prints "LISTENING <port>" as the
// first line on stdout. Exits when stdin closes or on SIGTERM/SIGINT.
//
// Methods served on every connection:
//   add       [a, b]            -> a + b
//   greet     {name}            -> "hello " + name
//   echo      any               -> the params (through JSON.parse, so not
//                                  exact for integers beyond 2^53)
//   boom      any               -> error {code: -32042, message: "boom",
//                                  data: {detail: "kaboom", n: 42}}
//   callme    {method, params}  -> calls method(params) back on the connected
//                                  peer over the same socket; returns its result
//                                  or passes its error (code, message, data) on
//   notifyme  {method, params}  -> sends that notification to the peer first,
//                                  then returns true
//   log       {msg}             -> records msg (meant as a notification)
//   getlog                      -> the recorded msgs, in arrival order

import { listen } from "./listen.mjs";
import {
  JSONRPCClient,
  JSONRPCErrorException,
  JSONRPCServer,
  JSONRPCServerAndClient,
} from "json-rpc-2.0";

const wss = listen({ maxPayload: 64 << 20 });

wss.on("connection", (ws) => {
  const log = [];

  const peer = new JSONRPCServerAndClient(
    new JSONRPCServer({ errorListener: () => {} }),
    new JSONRPCClient(
      (payload) =>
        new Promise((resolve, reject) => {
          ws.send(JSON.stringify(payload), (err) => (err ? reject(err) : resolve()));
        }),
    ),
    {
      errorListener: (message, data) =>
        console.error(`json-rpc-2.0: ${message}: ${JSON.stringify(data)}`),
    },
  );

  peer.addMethod("add", ([a, b]) => a + b);
  peer.addMethod("greet", ({ name }) => `hello ${name}`);
  peer.addMethod("echo", (params) => params);
  peer.addMethod("boom", () => {
    throw new JSONRPCErrorException("boom", -32042, { detail: "kaboom", n: 42 });
  });
  peer.addMethod("callme", ({ method, params }) => peer.request(method, params));
  peer.addMethod("notifyme", ({ method, params }) => {
    peer.notify(method, params);
    return true;
  });
  peer.addMethod("log", ({ msg }) => {
    log.push(msg);
  });
  peer.addMethod("getlog", () => log.slice());

  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      console.error("ignoring a binary frame");
      return;
    }
    let payload;
    try {
      payload = JSON.parse(data.toString("utf8"));
    } catch {
      ws.send(
        JSON.stringify({
          jsonrpc: "2.0",
          id: null,
          error: { code: -32700, message: "Parse error" },
        }),
      );
      return;
    }
    peer.receiveAndSend(payload).catch(() => {
      /* reported by errorListener */
    });
  });

  ws.on("close", () => peer.rejectAllPendingRequests("connection closed"));
  ws.on("error", (err) => console.error(`connection error: ${err.message}`));
});
