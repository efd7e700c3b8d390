// vscode-jsonrpc over a ws WebSocket: a MessageReader that hands on each text
// frame as one JSON-RPC message, and a MessageWriter that sends each message
// as one text frame. Shared by vscode_server.mjs and vscode_client.mjs.
//
// Every frame is also passed, as text, to onFrame(dir, text): dir is "-->"
// for frames this side sent and "<--" for frames it received.

import rpc from "vscode-jsonrpc/node.js";

const { AbstractMessageReader, AbstractMessageWriter, createMessageConnection } = rpc;

class WebSocketMessageReader extends AbstractMessageReader {
  constructor(ws, onFrame) {
    super();
    this.ws = ws;
    this.onFrame = onFrame;
  }

  listen(callback) {
    const onMessage = (data, isBinary) => {
      if (isBinary) {
        this.fireError(new Error("received a binary frame"));
        return;
      }
      const text = data.toString("utf8");
      this.onFrame("<--", text);
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (e) {
        this.fireError(new Error(`unparsable frame: ${text}`));
        return;
      }
      callback(msg);
    };
    const onClose = () => this.fireClose();
    const onError = (err) => this.fireError(err);
    this.ws.on("message", onMessage);
    this.ws.on("close", onClose);
    this.ws.on("error", onError);
    return {
      dispose: () => {
        this.ws.off("message", onMessage);
        this.ws.off("close", onClose);
        this.ws.off("error", onError);
      },
    };
  }
}

class WebSocketMessageWriter extends AbstractMessageWriter {
  constructor(ws, onFrame) {
    super();
    this.ws = ws;
    this.onFrame = onFrame;
    ws.on("close", () => this.fireClose());
  }

  write(msg) {
    const text = JSON.stringify(msg);
    this.onFrame("-->", text);
    return new Promise((resolve, reject) => {
      this.ws.send(text, (err) => {
        if (err) {
          this.fireError(err, msg);
          reject(err);
        } else {
          resolve();
        }
      });
    });
  }

  end() {}
}

// connect returns a vscode-jsonrpc MessageConnection over ws (not yet
// listening). logger receives vscode-jsonrpc's own complaints.
export function connect(ws, onFrame, logger) {
  return createMessageConnection(
    new WebSocketMessageReader(ws, onFrame),
    new WebSocketMessageWriter(ws, onFrame),
    logger,
  );
}

export const { CancellationTokenSource, ResponseError } = rpc;

// RequestCancelled is LSP's code for a request answered because it was
// cancelled. vscode-jsonrpc 8 sends $/cancelRequest but leaves the code to
// vscode-languageserver-protocol (LSPErrorCodes.RequestCancelled), so it is
// written out here.
export const RequestCancelled = -32800;
