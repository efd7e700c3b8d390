// wsrpc.js: a browser client for wsrpc (github.com/wsrpc/wsrpc), JSON-RPC
// 2.0 over WebSocket, in both directions. One dependency-free ES module, no
// build step: serve it with wsrpc.ScriptHandler() and import it.
//
//	import { connect, RPCError } from "/wsrpc.js";
//	const client = connect("/rpc");
//	const sum = await client.call("math.sum", [1, 2]);
//
// The wire format is plain JSON-RPC 2.0 in WebSocket text messages; a batch
// is a JSON array in one message. Either side may call, notify and batch.
//
// Authentication. A browser cannot set headers (Authorization) on a
// WebSocket handshake, so the server's Authenticate hook reads one of:
//
//   - a cookie session: the browser sends the page's cookies with the
//     handshake (same site), so nothing is to be done here. Set the cookie
//     HttpOnly and SameSite=Lax or Strict at login; the server's Origin check
//     refuses cross-site pages.
//   - a token in the query string: options.token (a string, or a function
//     returning one or a promise of one, called before every connection
//     attempt so that a reconnect takes a fresh token) is appended as
//     ?token=... (options.tokenParam renames it). The server reads
//     r.URL.Query().Get("token"). Query strings end up in access logs:
//     prefer short-lived tokens.
//
// A refused handshake is invisible to a browser's WebSocket (every failure is
// close code 1006), so after a failed attempt the client asks the same URL
// with a plain GET (fetch, same credentials rules) for the HTTP status; 401
// and 403 become a HandshakeError and stop the reconnecting (options.probe:
// false turns this off).
//
// Reconnecting (options.reconnect, default true). After the connection drops
// the client reconnects with exponential backoff and jitter (each delay is
// drawn between half of and all of min(maxDelay, minDelay * 2^n), n counting
// the failed attempts, and connections dropped within maxDelay of opening),
// from options.minDelay (100 ms) up to options.maxDelay (5 s). It stops after
// close(), on a handshake refused with 401 or 403, and on close codes 4000 to
// 4999 from the server, which an application uses to say "do not come back".
// Close code 1000 from the server does NOT stop it: a wsrpc server's
// Peer.Close always sends 1000, whether it restarts, kicks a connection or
// sheds load, so 1000 means "this connection is over", not "this client is".
// options.shouldReconnect(info) overrides the decision (except after close()).
//
// Streams (the Go package's Stream, either direction). client.subscribe
// subscribes to a stream the other side serves and gives an async iterable
// Subscription; client.stream serves one, feeding a Sink whose send waits
// for the subscriber's credit. Streams belong to one connection: when it
// ends, subscriptions end with its ConnectionLostError and served streams
// end too (sink.closed resolves "lost"); none survives a reconnect.
// Subscribe again in onopen, which runs on every connection, without
// awaiting the loop that reads:
//
//	connect("/rpc", { onopen: async (c) => { read(await c.subscribe("ticks", {})); } });

/** JSON-RPC 2.0 error codes, those of the specification and wsrpc's own. */
export const codes = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  SERVER_BUSY: -32000,
  RESPONSE_TOO_LARGE: -32001,
  UNAUTHORIZED: -32002,
});

/**
 * A JSON-RPC error object: what a call rejects with when the other side
 * answers with an error, and what a handler throws to answer with one.
 */
export class RPCError extends Error {
  /**
   * @param {number} code the JSON-RPC error code
   * @param {string} message
   * @param {*} [data] any JSON value; left out of the wire when undefined
   */
  constructor(code, message, data) {
    super(message);
    this.name = "RPCError";
    /** @type {number} */
    this.code = code;
    /** @type {*} */
    this.data = data;
  }

  /** @returns {{code:number, message:string, data?:*}} the wire error object */
  toJSON() {
    const e = { code: this.code, message: this.message };
    if (this.data !== undefined) e.data = this.data;
    return e;
  }

  /** @param {*} e an error object from the wire */
  static from(e) {
    if (e === null || typeof e !== "object") return new RPCError(codes.INTERNAL_ERROR, "invalid error object", e);
    return new RPCError(Number(e.code), String(e.message ?? ""), e.data);
  }
}

/** What a call rejects with when its timeout passes. The connection stays up. */
export class TimeoutError extends Error {
  constructor(message) {
    super(message);
    this.name = "TimeoutError";
  }
}

/**
 * What pending calls reject with when the connection (or the connection
 * attempt they waited for) ends, and what calls on a closed client reject
 * with. code and reason are those of the WebSocket close event.
 */
export class ConnectionLostError extends Error {
  constructor(message, { code, reason } = {}) {
    super(message);
    this.name = "ConnectionLostError";
    /** @type {number|undefined} */
    this.code = code;
    /** @type {string|undefined} */
    this.reason = reason;
  }
}

/**
 * A ConnectionLostError for a handshake the server refused: status is the
 * HTTP status found by the probe (401 Authenticate refused, 403 Host or
 * Origin refused, 429 too many connections, 503 shutting down).
 */
export class HandshakeError extends ConnectionLostError {
  constructor(status, message, init) {
    super(message, init);
    this.name = "HandshakeError";
    /** @type {number} */
    this.status = status;
  }
}

/** An HTTP POST answered with a status other than 200 or 204. */
export class HTTPError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "HTTPError";
    /** @type {number} */
    this.status = status;
  }
}

/**
 * What a subscription ends with when values come faster than they are
 * taken under overflow "end", or beyond the credit it granted under
 * "block" (the serving side broke its promise). Its name is
 * "StreamOverflowError".
 */
export class StreamOverflowError extends Error {
  constructor(message) {
    super(message);
    this.name = "StreamOverflowError";
  }
}

/**
 * What Sink.send rejects with once the stream has ended. reason is why:
 * "closed" (this side ended it: sink.close, or the handler settled),
 * "unsubscribed" (the subscriber left) or "lost" (the connection ended; the
 * ConnectionLostError is the cause).
 */
export class StreamClosedError extends Error {
  constructor(reason, cause) {
    super(`wsrpc: stream closed (${reason})`, cause === undefined ? undefined : { cause });
    this.name = "StreamClosedError";
    /** @type {"closed"|"unsubscribed"|"lost"} */
    this.reason = reason;
  }
}

const OPEN = 1; // WebSocket.OPEN

// The notifications of the stream protocol (see the Streams section of the
// Go package's documentation). Names beginning with "$/stream." are wsrpc's:
// methods of those names are never served.
const STREAM_PREFIX = "$/stream.";
const STREAM_NEXT = STREAM_PREFIX + "next"; // serving → subscriber: {id, value}
const STREAM_END = STREAM_PREFIX + "end"; // serving → subscriber: {id, error?}
const STREAM_CREDIT = STREAM_PREFIX + "credit"; // subscriber → serving: {id, n, bytes}
const STREAM_CANCEL = STREAM_PREFIX + "cancel"; // subscriber → serving: {id}
const OVERFLOW = ["block", "dropOldest", "end"];

/**
 * @typedef {Object} CallOptions
 * @property {AbortSignal} [signal] aborting it rejects the call with the
 *   signal's reason (an AbortError by default); a late answer is dropped
 * @property {number} [timeout] milliseconds; past it the call rejects with a
 *   TimeoutError. 0 or absent: the client's options.timeout, if any
 */

/**
 * @typedef {Object} SubscribeOptions
 * @property {number} [buffer=64] values received and not yet taken that the
 *   subscription holds
 * @property {number} [maxBytes=1048576] their bytes (of the messages, as
 *   JSON text); under "block" the byte credit, which the serving side may
 *   overshoot by one message
 * @property {"block"|"dropOldest"|"end"} [overflow="block"] what happens
 *   when values come faster than they are taken. "block": the serving side
 *   gets credit for buffer values and maxBytes bytes, given back as values
 *   are taken (half a buffer at a time), so it waits: nothing is lost.
 *   "dropOldest": it sends freely and the oldest value held is dropped,
 *   counted by sub.dropped. "end": it sends freely and a full buffer ends
 *   the subscription with a StreamOverflowError.
 * @property {AbortSignal} [signal] aborts the subscribe call (only)
 * @property {number} [timeout] bounds the subscribe call (only), in ms
 */

/**
 * @typedef {Object} CloseInfo
 * @property {number} code the WebSocket close code (1006 for a failed attempt)
 * @property {string} reason
 * @property {boolean} wasClean
 * @property {boolean} opened whether this connection had opened
 * @property {number} [status] the HTTP status of a refused handshake, if probed
 * @property {Error} error what pending calls were rejected with
 * @property {boolean} reconnecting whether the client will try again
 */

/**
 * @typedef {Object} ClientOptions
 * @property {boolean} [reconnect=true] reconnect after the connection drops
 * @property {number} [minDelay=100] first reconnect delay, in ms
 * @property {number} [maxDelay=5000] largest reconnect delay, in ms
 * @property {(info: CloseInfo) => boolean} [shouldReconnect] overrides the
 *   decision to reconnect (not after close())
 * @property {string|(() => string|Promise<string>)} [token] sent as the
 *   query parameter tokenParam of each connection attempt
 * @property {string} [tokenParam="token"]
 * @property {(client: Client) => (void|Promise<void>)} [onopen] runs on every
 *   connection, before the calls made while disconnected go out: the place
 *   to re-authenticate or resubscribe
 * @property {(info: CloseInfo) => void} [onclose] runs when a connection or a
 *   connection attempt ends, after the pending calls were rejected
 * @property {number} [timeout=0] default timeout of calls, in ms (0: none)
 * @property {boolean} [probe=true] after a failed handshake, GET the URL to
 *   learn the HTTP status
 * @property {string|string[]} [protocols] WebSocket subprotocols
 * @property {typeof WebSocket} [WebSocket] the WebSocket constructor
 *   (globalThis.WebSocket by default)
 * @property {{error: Function, warn: Function}} [logger=console] receives
 *   handler errors, which never go on the wire
 */

/**
 * Connects to a wsrpc endpoint and returns the client; the same as
 * new Client(url, options).
 * @param {string} url ws:, wss:, http:, https: or relative to the page ("/rpc")
 * @param {ClientOptions} [options]
 * @returns {Client}
 */
export function connect(url, options) {
  return new Client(url, options);
}

/**
 * A bidirectional JSON-RPC 2.0 connection that reconnects by itself. Calls
 * made while it is (re)connecting wait for the next connection attempt and
 * reject with a ConnectionLostError if that attempt fails.
 */
export class Client {
  #url;
  #opts;
  #ws = null;
  #state = "connecting"; // connecting | open | waiting | closed
  #ready = false; // open and onopen done
  #attempt = 0;
  #timer = null;
  #nextId = 0;
  #pending = new Map(); // id -> call entry, sent on the current socket
  #queue = []; // frames waiting for a connection
  #methods = new Map();
  #subs = new Map(); // subscription id -> control of a Subscription, on the current socket
  #sinks = new Map(); // stream id -> control of a Sink served on the current socket
  #nextSink = 0;
  #listeners = new Map();
  #waiters = [];
  #closedError = null;
  #log;

  /**
   * @param {string} url
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.#url = url;
    this.#opts = { reconnect: true, minDelay: 100, maxDelay: 5000, tokenParam: "token", probe: true, timeout: 0, ...options };
    this.#log = this.#opts.logger ?? console;
    /** @type {ClientOptions["onopen"]} */
    this.onopen = this.#opts.onopen;
    /** @type {ClientOptions["onclose"]} */
    this.onclose = this.#opts.onclose;
    this.#connect();
  }

  /** @returns {"connecting"|"open"|"waiting"|"closed"} the connection state; waiting: for the next reconnect attempt */
  get state() {
    return this.#state;
  }

  /**
   * Resolves when the client is connected and onopen has returned (at once
   * if it is), rejects when it has stopped for good (close(), a refused
   * handshake, a 4000-4999 close code). Not to be awaited inside onopen.
   * @returns {Promise<void>}
   */
  ready() {
    if (this.#closedError) return Promise.reject(this.#closedError);
    if (this.#ready) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * Calls method with params and resolves with its result.
   * @param {string} method
   * @param {Array|Object} [params]
   * @param {CallOptions} [options]
   * @returns {Promise<*>} rejects with RPCError, ConnectionLostError,
   *   TimeoutError, or the abort reason
   */
  call(method, params, options) {
    let c;
    try {
      c = this.#newCall(method, params, options);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!c.entry.settled) this.#submit({ items: [c.item], batch: false });
    return c.promise;
  }

  /**
   * Sends a notification. Resolves once it is written to the socket.
   * @param {string} method
   * @param {Array|Object} [params]
   * @returns {Promise<void>}
   */
  notify(method, params) {
    let msg;
    try {
      msg = request(method, params);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => this.#submit({ items: [{ msg, entry: null }], batch: false, resolve, reject }));
  }

  /**
   * Sends the calls and notifications that build adds as one batch, in one
   * WebSocket message, when build returns (build must be synchronous). Each
   * call of the builder returns its own promise.
   *
   *	await client.batch(b => { p1 = b.call("sum", [1, 2]); b.notify("log", ["hi"]); });
   *
   * @param {(b: BatchBuilder) => void} build
   * @returns {Promise<PromiseSettledResult<*>[]>} resolves when every call
   *   has its outcome, with the outcomes of the calls in order
   */
  batch(build) {
    const b = new BatchBuilder((m, p, o) => this.#newCall(m, p, o));
    const r = build(b);
    if (r && typeof r.then === "function") throw new TypeError("wsrpc: the batch builder must be synchronous");
    b.closed = true;
    if (b.items.length > 0) this.#submit({ items: b.items, batch: true });
    return Promise.allSettled(b.promises);
  }

  /**
   * Serves method to the other side. handler(params, ctx) may be async; its
   * result (undefined becomes null) is the answer. A thrown RPCError is sent
   * with its code, message and data; anything else becomes -32603 "internal
   * error" and is logged here. ctx.signal aborts when the connection ends.
   * Methods not registered are answered -32601.
   * @param {string} method
   * @param {(params: *, ctx: {client: Client, method: string, signal: AbortSignal}) => *} handler
   * @returns {() => void} unregisters it
   */
  register(method, handler) {
    this.#methods.set(method, handler);
    return () => {
      if (this.#methods.get(method) === handler) this.#methods.delete(method);
    };
  }

  /**
   * Listens to the notification name from the other side; several handlers
   * may listen to one name. Errors they throw are logged.
   * @param {string} name
   * @param {(params: *, ctx: {client: Client, method: string}) => void} handler
   * @returns {() => void} removes the handler
   */
  on(name, handler) {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(handler);
    return () => this.off(name, handler);
  }

  /** Removes a handler added with on. */
  off(name, handler) {
    this.#listeners.get(name)?.delete(handler);
  }

  /**
   * Subscribes to the stream name on the other side (a Go Stream's
   * Register or RegisterPush) with params, and resolves with the
   * Subscription once the other side has answered with its id. The
   * subscription ends when the serving side ends it, on close(), or with
   * the connection: it does not survive a reconnect (subscribe again in
   * onopen).
   *
   *	const sub = await client.subscribe("ticks", { every: 100 }, { buffer: 16 });
   *	for await (const tick of sub) show(tick);   // break unsubscribes
   *
   * @param {string} name
   * @param {Array|Object} [params]
   * @param {SubscribeOptions} [options]
   * @returns {Promise<Subscription>} rejects as call does, and with a
   *   TypeError for bad options
   */
  async subscribe(name, params, { buffer = 64, maxBytes = 1 << 20, overflow = "block", signal, timeout } = {}) {
    if (!Number.isInteger(buffer) || buffer < 1) throw new TypeError("wsrpc: buffer must be a positive integer");
    if (!(maxBytes > 0)) throw new TypeError("wsrpc: maxBytes must be positive");
    if (!OVERFLOW.includes(overflow)) throw new TypeError(`wsrpc: overflow must be one of ${OVERFLOW.join(", ")}`);
    const c = this.#newCall(name, params, { signal, timeout });
    if (!c.entry.settled) this.#submit({ items: [c.item], batch: false });
    const id = await c.promise;
    // The answer came on c.entry.ws: the stream lives there, and nowhere
    // else (the serving side sends nothing before the credit below).
    const ws = c.entry.ws;
    if (typeof id !== "string" || id === "") {
      throw new RPCError(codes.INTERNAL_ERROR, `wsrpc: subscribing to ${name}: the answer is not a subscription id`, id);
    }
    if (!ws || ws !== this.#ws || ws.readyState !== OPEN) {
      throw this.#closedError ?? new ConnectionLostError(`wsrpc: subscribing to ${name}: connection lost`);
    }
    if (this.#subs.has(id)) throw new Error(`wsrpc: subscribing to ${name}: the other side answered an id in use (${id})`);
    const write = (text) => ws.readyState === OPEN && ws.send(text);
    let ctl;
    const sub = new Subscription(id, { buffer, maxBytes, overflow }, write, (c) => {
      ctl = c;
      this.#subs.set(id, c);
    }, () => {
      if (this.#subs.get(id) === ctl) this.#subs.delete(id);
    });
    write(streamText(STREAM_CREDIT, overflow === "block" ? { id, n: buffer, bytes: maxBytes } : { id, n: -1 }));
    return sub;
  }

  /**
   * Serves the stream name to the other side (whose Go code subscribes
   * with Stream.Subscribe). On each subscription, handler(params, sink)
   * is called as its id is answered; it sends values with sink.send (the
   * first waits for the subscriber's first credit), and the stream ends when the handler's promise settles (as
   * with Go's Stream.Register): fulfilled, a normal end; rejected or
   * thrown, an end with that error: an RPCError goes out as is, anything
   * else as -32603 "internal error" and is logged here. To feed a sink from
   * elsewhere, keep it and return sink.closed. The stream also ends when
   * the other side unsubscribes or the connection ends (sink.closed and
   * sink.signal tell); errors the handler throws after that are dropped.
   *
   *	client.stream("page.clicks", async (params, sink) => {
   *	  for (const c of clicks) await sink.send(c); // waits for the subscriber's credit
   *	});
   *
   * @param {string} name
   * @param {(params: *, sink: Sink) => (void|Promise<void>)} handler
   * @returns {() => void} unregisters it (streams already served go on)
   */
  stream(name, handler) {
    return this.register(name, (params) => {
      const ws = this.#ws; // the subscribe call is being read from it
      const id = "s" + ++this.#nextSink;
      let ctl;
      const sink = new Sink(id, (text) => ws.readyState === OPEN && ws.send(text), (c) => {
        ctl = c;
        this.#sinks.set(id, c);
      }, () => {
        if (this.#sinks.get(id) === ctl) this.#sinks.delete(id);
      }, this.#log, name);
      Promise.resolve()
        .then(() => handler(params, sink))
        .then(
          () => sink.close(),
          (e) => sink.close(e ?? new Error(`wsrpc: stream ${name} rejected with ${e}`)),
        );
      return id;
    });
  }

  /**
   * Closes the connection (code 1000 unless given; browsers allow 1000 and
   * 3000-4999) and stops reconnecting. Pending and queued calls reject at
   * once with a ConnectionLostError, as do later calls.
   * @param {number} [code=1000]
   * @param {string} [reason]
   */
  close(code = 1000, reason = "") {
    if (this.#state === "closed") return;
    const err = new ConnectionLostError("wsrpc: client closed", { code, reason });
    const ws = this.#ws;
    const opened = this.#state === "open";
    this.#ws = null;
    clearTimeout(this.#timer);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
    }
    this.#abortHandlers?.abort(err);
    this.#endStreams(err);
    this.#stop(err);
    this.#callHook(this.onclose, { code, reason, wasClean: true, opened, error: err, reconnecting: false });
  }

  // ---- connection

  #abortHandlers = null;
  #openedAt = 0;

  async #connect() {
    this.#state = "connecting";
    this.#ready = false;
    let url;
    try {
      url = await this.#socketURL();
    } catch (e) {
      this.#log.error("wsrpc: token:", e);
      url = null;
    }
    if (this.#state === "closed") return;
    let ws;
    try {
      if (url === null) throw new Error("no URL");
      const WS = this.#opts.WebSocket ?? globalThis.WebSocket;
      ws = new WS(url, this.#opts.protocols);
    } catch (e) {
      this.#ended(null, { code: 1006, reason: String(e?.message ?? e), wasClean: false }, false, url);
      return;
    }
    this.#ws = ws;
    let opened = false;
    const handlers = new AbortController();
    this.#abortHandlers = handlers;
    ws.onopen = async () => {
      opened = true;
      this.#openedAt = Date.now();
      this.#state = "open";
      await this.#callHook(this.onopen, this);
      if (this.#ws !== ws) return;
      this.#ready = true;
      const queue = this.#queue;
      this.#queue = [];
      for (const f of queue) this.#write(ws, f);
      for (const w of this.#waiters.splice(0)) w.resolve();
    };
    ws.onmessage = (ev) => this.#received(ws, ev.data, handlers.signal);
    ws.onerror = () => {}; // a close event follows
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#ready = false;
      handlers.abort(new ConnectionLostError("wsrpc: connection lost", { code: ev.code, reason: ev.reason }));
      this.#ended(ws, ev, opened, url);
    };
  }

  async #socketURL() {
    const u = new URL(this.#url, globalThis.location?.href);
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    let t = this.#opts.token;
    if (typeof t === "function") t = await t();
    if (t !== undefined && t !== null && t !== "") u.searchParams.set(this.#opts.tokenParam, String(t));
    return u.href;
  }

  // #ended handles the end of a connection or of a failed attempt.
  async #ended(ws, ev, opened, url) {
    const info = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean, opened };
    const lost = new ConnectionLostError(
      `wsrpc: connection lost (code ${ev.code}${ev.reason ? ": " + ev.reason : ""})`,
      { code: ev.code, reason: ev.reason },
    );
    // What was sent on this socket will never be answered.
    for (const e of [...this.#pending.values()]) e.fail(lost);
    this.#endStreams(lost);
    let err = lost;
    if (!opened && url && this.#opts.probe) {
      info.status = await this.#probe(url);
      if (this.#state === "closed") return;
      if (info.status >= 400) {
        err = new HandshakeError(info.status, `wsrpc: handshake refused: HTTP ${info.status}`, info);
      }
    }
    info.error = err;
    // What waited for this attempt fails with it.
    const queue = this.#queue;
    this.#queue = [];
    for (const f of queue) failFrame(f, err);

    let again = this.#opts.reconnect && !(info.code >= 4000 && info.code <= 4999) && info.status !== 401 && info.status !== 403;
    if (typeof this.#opts.shouldReconnect === "function") {
      try {
        again = !!this.#opts.shouldReconnect(info);
      } catch (e) {
        this.#log.error("wsrpc: shouldReconnect:", e);
      }
    }
    info.reconnecting = again;
    // The backoff starts over after a connection that lasted; one that the
    // server keeps dropping at once backs off as failed attempts do.
    if (opened && Date.now() - this.#openedAt >= this.#opts.maxDelay) this.#attempt = 0;
    if (again) {
      this.#state = "waiting";
      const base = Math.min(this.#opts.maxDelay, this.#opts.minDelay * 2 ** this.#attempt);
      this.#attempt++;
      const delay = base / 2 + (Math.random() * base) / 2; // jitter
      this.#timer = setTimeout(() => this.#connect(), delay);
    } else {
      this.#stop(err);
    }
    this.#callHook(this.onclose, info);
  }

  // #probe GETs the endpoint over HTTP to learn why a handshake failed.
  async #probe(wsURL) {
    try {
      const u = new URL(wsURL);
      u.protocol = u.protocol === "wss:" ? "https:" : "http:";
      const res = await fetch(u.href, { credentials: "same-origin", cache: "no-store", signal: AbortSignal.timeout(5000) });
      res.body?.cancel?.().catch(() => {});
      return res.status;
    } catch {
      return undefined; // cross-origin without CORS, network down
    }
  }

  #stop(err) {
    this.#state = "closed";
    this.#ready = false;
    this.#closedError = err;
    for (const e of [...this.#pending.values()]) e.fail(err);
    const queue = this.#queue;
    this.#queue = [];
    for (const f of queue) failFrame(f, err);
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  async #callHook(hook, arg) {
    if (typeof hook !== "function") return;
    try {
      await hook(arg);
    } catch (e) {
      this.#log.error("wsrpc: hook:", e);
    }
  }

  // ---- sending

  #newCall(method, params, { signal, timeout } = {}) {
    const id = ++this.#nextId;
    const msg = request(method, params, id);
    const entry = { id, settled: false, sent: false };
    const promise = new Promise((resolve, reject) => {
      let timer = null;
      const onAbort = () => entry.fail(signal.reason ?? new DOMException("aborted", "AbortError"));
      const done = () => {
        entry.settled = true;
        this.#pending.delete(id);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      entry.ok = (v) => {
        if (!entry.settled) done(), resolve(v);
      };
      entry.fail = (e) => {
        if (!entry.settled) done(), reject(e);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      const ms = timeout || this.#opts.timeout;
      if (ms > 0) timer = setTimeout(() => entry.fail(new TimeoutError(`wsrpc: call ${method} timed out after ${ms} ms`)), ms);
    });
    return { promise, entry, item: { msg, entry } };
  }

  #submit(frame) {
    if (this.#state === "closed") return failFrame(frame, this.#closedError);
    if (this.#ready && this.#ws) return this.#write(this.#ws, frame);
    if (this.#state === "open" && this.#ws) return this.#write(this.#ws, frame); // from onopen
    this.#queue.push(frame);
  }

  #write(ws, frame) {
    const live = frame.items.filter((it) => !it.entry || !it.entry.settled);
    if (live.length === 0) return frame.resolve?.();
    let text;
    try {
      text = JSON.stringify(frame.batch ? live.map((it) => it.msg) : live[0].msg);
    } catch (e) {
      return failFrame(frame, e);
    }
    for (const it of live) {
      if (it.entry) {
        it.entry.sent = true;
        it.entry.ws = ws;
        this.#pending.set(it.entry.id, it.entry);
      }
    }
    try {
      ws.send(text);
    } catch (e) {
      return failFrame(frame, e);
    }
    frame.resolve?.();
  }

  #reply(ws, replies) {
    if (ws.readyState !== OPEN) return; // answers die with their connection
    const parts = replies.map((r) => {
      try {
        return JSON.stringify(r);
      } catch (e) {
        this.#log.error("wsrpc: cannot encode the result of a handler:", e);
        return JSON.stringify({ jsonrpc: "2.0", id: r.id, error: { code: codes.INTERNAL_ERROR, message: "internal error" } });
      }
    });
    ws.send(replies.isBatch ? "[" + parts.join(",") + "]" : parts[0]);
  }

  // ---- receiving

  #received(ws, data, signal) {
    if (typeof data !== "string") return; // wsrpc speaks text messages only
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return this.#reply(ws, [errorReply(null, codes.PARSE_ERROR, "parse error")]);
    }
    if (!Array.isArray(msg)) {
      if (isStreamMessage(msg)) return this.#streamMessage(msg, data);
      const r = this.#item(msg, signal);
      if (r) Promise.resolve(r).then((x) => x && this.#reply(ws, [x]));
      return;
    }
    if (msg.length === 0) return this.#reply(ws, [errorReply(null, codes.INVALID_REQUEST, "invalid request: empty batch")]);
    Promise.all(msg.map((m) => this.#item(m, signal))).then((rs) => {
      const out = rs.filter(Boolean);
      out.isBatch = true;
      if (out.length > 0) this.#reply(ws, out);
    });
  }

  // #item handles one message or batch item; it returns the reply, a
  // promise of it, or nothing.
  #item(m, signal) {
    if (m === null || typeof m !== "object" || Array.isArray(m)) return errorReply(null, codes.INVALID_REQUEST, "invalid request");
    if ("method" in m) {
      const isCall = "id" in m;
      if (m.jsonrpc !== "2.0" || typeof m.method !== "string") {
        return isCall ? errorReply(m.id, codes.INVALID_REQUEST, "invalid request") : undefined;
      }
      if (!isCall) {
        if (m.method.startsWith(STREAM_PREFIX)) return; // inside a batch: ignored
        return this.#notified(m.method, m.params);
      }
      return this.#serve(m, signal);
    }
    if ("id" in m && ("result" in m || "error" in m)) {
      const e = this.#pending.get(m.id);
      if (e) "error" in m && m.error !== undefined && m.error !== null ? e.fail(RPCError.from(m.error)) : e.ok(m.result);
      else if (m.id === null && m.error) this.#log.warn("wsrpc: error from the other side:", m.error);
      return;
    }
    return errorReply(m.id ?? null, codes.INVALID_REQUEST, "invalid request");
  }

  async #serve(m, signal) {
    const h = m.method.startsWith(STREAM_PREFIX) ? undefined : this.#methods.get(m.method);
    if (!h) return errorReply(m.id, codes.METHOD_NOT_FOUND, "method not found");
    try {
      const result = await h(m.params, { client: this, method: m.method, signal });
      return { jsonrpc: "2.0", id: m.id, result: result === undefined ? null : result };
    } catch (e) {
      if (e instanceof RPCError) return { jsonrpc: "2.0", id: m.id, error: e.toJSON() };
      this.#log.error(`wsrpc: handler ${m.method}:`, e);
      return errorReply(m.id, codes.INTERNAL_ERROR, "internal error");
    }
  }

  // #streamMessage acts on a stream message of the current socket. Messages
  // for unknown ids, and malformed ones, are ignored.
  #streamMessage(m, data) {
    const p = m.params;
    if (p === null || typeof p !== "object" || typeof p.id !== "string") return;
    switch (m.method) {
      case STREAM_NEXT:
        // The size counted is the whole message's, as a wsrpc serving side
        // counts it against the byte credit.
        this.#subs.get(p.id)?.push(p.value ?? null, utf8Length(data));
        break;
      case STREAM_END:
        this.#subs.get(p.id)?.end(p.error === undefined || p.error === null ? null : RPCError.from(p.error));
        break;
      case STREAM_CREDIT:
        this.#sinks.get(p.id)?.grant(Number(p.n) || 0, Number(p.bytes) || 0);
        break;
      case STREAM_CANCEL:
        this.#sinks.get(p.id)?.cancel();
        break;
    }
  }

  // #endStreams ends every stream of the connection that ended with err.
  #endStreams(err) {
    const subs = [...this.#subs.values()];
    const sinks = [...this.#sinks.values()];
    this.#subs.clear();
    this.#sinks.clear();
    for (const s of subs) s.end(err);
    for (const s of sinks) s.lost(err);
  }

  #notified(name, params) {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const h of [...set]) {
      try {
        const r = h(params, { client: this, method: name });
        if (r && typeof r.catch === "function") r.catch((e) => this.#log.error(`wsrpc: notification ${name}:`, e));
      } catch (e) {
        this.#log.error(`wsrpc: notification ${name}:`, e);
      }
    }
  }
}

/**
 * Collects the calls and notifications of one batch; see Client.batch and
 * postBatch.
 */
export class BatchBuilder {
  /** @param {(method: string, params: *, options: CallOptions) => {promise: Promise, item: object}} newCall */
  constructor(newCall) {
    this.items = [];
    this.promises = [];
    this.closed = false;
    this.#newCall = newCall;
  }

  #newCall;

  /**
   * Adds a call.
   * @param {string} method
   * @param {Array|Object} [params]
   * @param {CallOptions} [options]
   * @returns {Promise<*>} its result, or its error
   */
  call(method, params, options) {
    if (this.closed) throw new Error("wsrpc: batch already sent");
    const c = this.#newCall(method, params, options);
    this.items.push(c.item);
    this.promises.push(c.promise);
    return c.promise;
  }

  /**
   * Adds a notification.
   * @param {string} method
   * @param {Array|Object} [params]
   */
  notify(method, params) {
    if (this.closed) throw new Error("wsrpc: batch already sent");
    this.items.push({ msg: request(method, params), entry: null });
  }
}

/**
 * The values of one stream subscribed to with Client.subscribe, in order.
 * It is an async iterator: for await (const v of sub) takes them until the
 * stream ends; leaving the loop early (break, return, throw) unsubscribes.
 * An end with an error (an RPCError from the serving side, a
 * StreamOverflowError, the ConnectionLostError when the connection ends)
 * is thrown once the values received before it are taken.
 */
export class Subscription {
  #id;
  #write;
  #detach;
  #policy;
  #max;
  #maxBytes;
  #buf = []; // [value, size] received, not yet taken
  #bytes = 0;
  #dropped = 0;
  #ended = false;
  #error = null; // why it ended; null for a normal end
  #waiters = []; // next() calls waiting for a value
  #owedN = 0; // credit to give back ("block")
  #owedBytes = 0;

  /** @hideconstructor made by Client.subscribe */
  constructor(id, { buffer, maxBytes, overflow }, write, attach, detach) {
    this.#id = id;
    this.#write = write;
    this.#detach = detach;
    this.#policy = overflow;
    this.#max = buffer;
    this.#maxBytes = maxBytes;
    attach({ push: (v, size) => this.#push(v, size), end: (err) => this.#end(err) });
  }

  /** @returns {string} the subscription id, chosen by the serving side */
  get id() {
    return this.#id;
  }

  /** @returns {number} how many values overflow "dropOldest" has dropped */
  get dropped() {
    return this.#dropped;
  }

  /**
   * Takes the next value, waiting for one.
   * @returns {Promise<IteratorResult<*>>} {value, done: false}, or
   *   {done: true} once the stream has ended normally (or close() was
   *   called) and every value is taken; rejects with the error that ended
   *   it, every time it is called after that
   */
  next() {
    if (this.#buf.length > 0) return Promise.resolve({ value: this.#take(), done: false });
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * Unsubscribes: the serving side is told, and next() ends the iteration
   * once the values already received are taken. Later calls do nothing.
   */
  close() {
    if (this.#end(null)) this.#write(streamText(STREAM_CANCEL, { id: this.#id }));
  }

  /** Unsubscribes; what for await calls when a loop is left early. */
  return() {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  #take() {
    const [v, size] = this.#buf.shift();
    this.#bytes -= size;
    if (this.#policy === "block" && !this.#ended) {
      this.#owedN++;
      this.#owedBytes += size;
      if (this.#owedN * 2 >= this.#max || this.#owedBytes * 2 >= this.#maxBytes) {
        this.#write(streamText(STREAM_CREDIT, { id: this.#id, n: this.#owedN, bytes: this.#owedBytes }));
        this.#owedN = this.#owedBytes = 0;
      }
    }
    return v;
  }

  // #push adds a value received, under the overflow policy.
  #push(v, size) {
    if (this.#ended) return;
    const full = this.#buf.length >= this.#max || (this.#buf.length > 0 && this.#bytes + size > this.#maxBytes);
    let over = false;
    if (this.#policy === "block") {
      // Values held plus values taken and not yet credited back: what was
      // granted and not given back. A value beyond is a broken promise.
      over = this.#buf.length + this.#owedN >= this.#max;
    } else if (full && this.#policy === "dropOldest") {
      while (this.#buf.length > 0 && (this.#buf.length >= this.#max || this.#bytes + size > this.#maxBytes)) {
        this.#bytes -= this.#buf.shift()[1];
        this.#dropped++;
      }
    } else {
      over = full;
    }
    if (over) {
      this.#end(new StreamOverflowError(`wsrpc: stream ${this.#id} overflowed its buffer of ${this.#max} values`));
      this.#write(streamText(STREAM_CANCEL, { id: this.#id }));
      return;
    }
    this.#buf.push([v, size]);
    this.#bytes += size;
    this.#deliver();
  }

  // #end ends the subscription with err (null: normal), unless it has
  // ended; it reports whether this call ended it.
  #end(err) {
    if (this.#ended) return false;
    this.#ended = true;
    this.#error = err;
    this.#detach();
    this.#deliver();
    return true;
  }

  #deliver() {
    while (this.#waiters.length > 0 && this.#buf.length > 0) this.#waiters.shift().resolve({ value: this.#take(), done: false });
    if (!this.#ended || this.#buf.length > 0) return;
    for (const w of this.#waiters.splice(0)) {
      this.#error ? w.reject(this.#error) : w.resolve({ value: undefined, done: true });
    }
  }
}

/**
 * Sends the values of one subscription to a stream served with
 * Client.stream.
 */
export class Sink {
  #id;
  #write;
  #detach;
  #log;
  #name;
  #active = false; // a credit came: the subscriber has the id
  #credit = 0; // values it may still send; -1: no limit
  #bytes = 0; // bytes it may still send (may go below 0 by one value)
  #queue = []; // sends waiting for credit, in order
  #ended = false;
  #endError = null; // for the end message
  #closedError = null; // what send rejects with
  #ac = new AbortController();
  #resolveClosed;

  /** @hideconstructor made by Client.stream */
  constructor(id, write, attach, detach, log, name) {
    this.#id = id;
    this.#write = write;
    this.#detach = detach;
    this.#log = log;
    this.#name = name;
    /**
     * Resolves when the stream has ended, with why: "closed" (this side
     * ended it), "unsubscribed" (the subscriber left) or "lost" (the
     * connection ended). Never rejects.
     * @type {Promise<"closed"|"unsubscribed"|"lost">}
     */
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    attach({
      grant: (n, bytes) => this.#grant(n, bytes),
      cancel: () => this.#finish(null, "unsubscribed"),
      lost: (err) => this.#finish(null, "lost", err),
    });
  }

  /** @returns {string} the subscription id, as the subscriber knows it */
  get id() {
    return this.#id;
  }

  /** @returns {AbortSignal} aborted when the stream ends (with a StreamClosedError) */
  get signal() {
    return this.#ac.signal;
  }

  /**
   * Sends value (any JSON value) to the subscriber, after the values sent
   * before it.
   * @param {*} value
   * @returns {Promise<void>} resolves once it is written, which waits for the
   *   subscriber's credit (its buffer has room: backpressure); rejects with a
   *   StreamClosedError once the stream has ended, or with
   *   JSON.stringify's error
   */
  send(value) {
    if (this.#ended) return Promise.reject(this.#closedError);
    let v;
    try {
      v = JSON.stringify(value) ?? "null";
    } catch (e) {
      return Promise.reject(e);
    }
    const text = `{"jsonrpc":"2.0","method":"${STREAM_NEXT}","params":{"id":${JSON.stringify(this.#id)},"value":${v}}}`;
    // The size counted is the value's, as a wsrpc subscriber gives it back.
    return new Promise((resolve, reject) => {
      this.#queue.push({ text, size: utf8Length(v), resolve, reject });
      this.#flush();
    });
  }

  /**
   * Ends the stream; error (none for a normal end) goes to the subscriber:
   * an RPCError as is, anything else as -32603 "internal error", logged
   * here. Sends still waiting for credit reject. Later calls do nothing.
   * @param {*} [error]
   */
  close(error) {
    this.#finish(error ?? null, "closed");
  }

  #flush() {
    while (this.#queue.length > 0 && this.#active && (this.#credit < 0 || (this.#credit > 0 && this.#bytes > 0))) {
      const q = this.#queue.shift();
      if (this.#credit > 0) {
        this.#credit--;
        this.#bytes -= q.size;
      }
      this.#write(q.text);
      q.resolve();
    }
  }

  #grant(n, bytes) {
    if (this.#ended) {
      // Ended before the subscriber had its id: the end is due now.
      this.#active = true;
      this.#write(this.#endMessage());
      this.#detach();
      return;
    }
    this.#active = true;
    if (n < 0) this.#credit = -1;
    else if (this.#credit >= 0) {
      this.#credit = Math.min(this.#credit + n, 2 ** 40);
      this.#bytes = Math.min(this.#bytes + Math.max(bytes, 0), 2 ** 50);
    }
    this.#flush();
  }

  #finish(endError, reason, cause) {
    if (this.#ended) return;
    this.#ended = true;
    this.#endError = endError;
    this.#closedError = new StreamClosedError(reason, cause);
    for (const q of this.#queue.splice(0)) q.reject(this.#closedError);
    this.#ac.abort(this.#closedError);
    this.#resolveClosed(reason);
    // The subscriber hears of an end of ours once it has the id (its first
    // credit); of the others, it knows.
    if (reason !== "closed") this.#detach();
    else if (this.#active) {
      this.#write(this.#endMessage());
      this.#detach();
    }
  }

  #endMessage() {
    const params = { id: this.#id };
    const e = this.#endError;
    if (e !== null) {
      params.error = { code: codes.INTERNAL_ERROR, message: "internal error" };
      if (e instanceof RPCError) params.error = e.toJSON();
      else this.#log.error(`wsrpc: stream ${this.#name}:`, e);
    }
    try {
      return streamText(STREAM_END, params);
    } catch (err) {
      this.#log.error(`wsrpc: stream ${this.#name}: cannot encode the error:`, err);
      return streamText(STREAM_END, { id: this.#id, error: { code: codes.INTERNAL_ERROR, message: "internal error" } });
    }
  }
}

function isStreamMessage(m) {
  return m !== null && typeof m === "object" && m.jsonrpc === "2.0" && !("id" in m) &&
    typeof m.method === "string" && m.method.startsWith(STREAM_PREFIX);
}

function streamText(method, params) {
  return JSON.stringify({ jsonrpc: "2.0", method, params });
}

// utf8Length returns the bytes of s in UTF-8, as WebSocket sends it (a lone
// surrogate becomes U+FFFD, 3 bytes).
function utf8Length(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++, (n += 2);
    else n += 2;
  }
  return n;
}

function request(method, params, id) {
  if (typeof method !== "string" || method === "") throw new TypeError("wsrpc: method must be a non-empty string");
  if (params !== undefined && (params === null || typeof params !== "object")) {
    throw new TypeError("wsrpc: params must be an array or an object");
  }
  const m = { jsonrpc: "2.0", method };
  if (params !== undefined) m.params = params;
  if (id !== undefined) m.id = id;
  return m;
}

function errorReply(id, code, message) {
  return { jsonrpc: "2.0", id, error: { code, message } };
}

function failFrame(frame, err) {
  for (const it of frame.items) it.entry?.fail(err);
  frame.reject?.(err);
}

// ---- HTTP POST

/**
 * @typedef {Object} PostOptions
 * @property {HeadersInit} [headers] e.g. { Authorization: "Bearer ..." }
 * @property {AbortSignal} [signal]
 * @property {RequestCredentials} [credentials="same-origin"] cookies
 * @property {typeof fetch} [fetch] the fetch function (globalThis.fetch)
 */

/**
 * Calls method over HTTP POST (a wsrpc Server answers POST with
 * Content-Type application/json on its route).
 * @param {string} url
 * @param {string} method
 * @param {Array|Object} [params]
 * @param {PostOptions} [options]
 * @returns {Promise<*>} the result; rejects with RPCError, or HTTPError for a
 *   refused request (401, 403, 413, ...)
 */
export async function post(url, method, params, options) {
  const answer = await postJSON(url, request(method, params, 1), options);
  if (answer === null || typeof answer !== "object" || Array.isArray(answer)) {
    throw new RPCError(codes.INTERNAL_ERROR, "wsrpc: invalid answer", answer);
  }
  if (answer.error !== undefined && answer.error !== null) throw RPCError.from(answer.error);
  return answer.result;
}

/**
 * Calls fn on a weeRPC endpoint over HTTP POST: the Go weerpc package's
 * Handler, or a Flask-RPC or Quart-RPC route. The call is
 * {"weerpc": 1.1, "function": fn, "data": data}.
 *
 *	const six = await weerpc("/weerpc", "sum", [1, 2, 3]);
 *
 * @param {string} url
 * @param {string} fn the function's name
 * @param {*} [data] an array (positional arguments), an object (named
 *   ones), any other value (the single argument), or undefined for none
 * @param {PostOptions} [options]
 * @returns {Promise<*>} the answer's data; rejects with an Error whose
 *   message is the answer's (name "WeeRPCError", the answer's data as
 *   err.data) when ok is false, or an HTTPError for a refused request
 *   (403, 405, 413, ...), with the answer's message when it has one
 */
export async function weerpc(url, fn, data, options) {
  const answer = await postJSON(url, { weerpc: 1.1, function: fn, data: data ?? null }, options);
  if (answer === null || typeof answer !== "object" || typeof answer.ok !== "boolean") {
    throw new Error("weerpc: invalid answer");
  }
  if (answer.ok) return answer.data;
  const err = new Error(typeof answer.message === "string" && answer.message ? answer.message : "weerpc: call failed");
  err.name = "WeeRPCError";
  err.data = answer.data ?? null;
  throw err;
}

/**
 * Sends a batch over HTTP POST, built as with Client.batch.
 *
 *	await postBatch("/rpc", b => { p = b.call("sum", [1, 2]); b.notify("log", ["hi"]); });
 *
 * @param {string} url
 * @param {(b: BatchBuilder) => void} build
 * @param {PostOptions} [options]
 * @returns {Promise<PromiseSettledResult<*>[]>} the outcomes of the calls
 */
export function postBatch(url, build, options) {
  const pending = new Map();
  let nextId = 0;
  const b = new BatchBuilder((method, params) => {
    const id = ++nextId;
    const item = { msg: request(method, params, id), entry: null };
    const promise = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    return { promise, item };
  });
  build(b);
  b.closed = true;
  if (b.items.length > 0) {
    postJSON(url, b.items.map((it) => it.msg), options).then(
      (answer) => {
        if (answer !== null && !Array.isArray(answer)) {
          // One error for the whole batch (too many items, ...).
          const err = RPCError.from(answer?.error);
          for (const p of pending.values()) p.reject(err);
          return;
        }
        for (const r of answer ?? []) {
          const p = pending.get(r?.id);
          if (!p) continue;
          pending.delete(r.id);
          r.error !== undefined && r.error !== null ? p.reject(RPCError.from(r.error)) : p.resolve(r.result);
        }
        for (const p of pending.values()) p.reject(new RPCError(codes.INTERNAL_ERROR, "wsrpc: no answer for this call"));
      },
      (err) => {
        for (const p of pending.values()) p.reject(err);
      },
    );
  }
  return Promise.allSettled(b.promises);
}

async function postJSON(url, body, { headers, signal, credentials = "same-origin", fetch: f = globalThis.fetch } = {}) {
  const h = new Headers(headers);
  h.set("Content-Type", "application/json");
  const res = await f(url, { method: "POST", headers: h, body: JSON.stringify(body), signal, credentials });
  if (res.status === 204) return null;
  if (!res.ok) {
    let msg = "";
    try {
      msg = (await res.text()).trim();
      // A weeRPC refusal is JSON with a message.
      const m = msg.startsWith("{") ? JSON.parse(msg)?.message : undefined;
      if (typeof m === "string" && m) msg = m;
    } catch {}
    throw new HTTPError(res.status, msg || `HTTP ${res.status}`);
  }
  return res.json();
}
