/**
 * Serves gRPC, gRPC-Web and the Connect protocol on ONE port.
 *
 * Without TLS, a `net` server reads the first bytes of each connection: the
 * HTTP/2 connection preface ("PRI * HTTP/2.0") goes to the h2c server, anything
 * else to an HTTP/1.1 server (browsers, curl, connect-web). Node's
 * `allowHTTP1` only works with TLS, which is why the bytes are sniffed. With
 * TLS, ALPN picks h2 or http/1.1, both served by connect-node.
 *
 * The h2c server is the grpc-js adapter when one is given (gRPC only, what
 * polyglot workers and subscribers speak; other content types get HTTP 415),
 * otherwise connect-node (gRPC, gRPC-Web and Connect).
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { cors as connectCors, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import corsMiddleware from "cors";
import { PEER_CERTIFICATE, type PeerCertificate } from "../auth/authenticator.js";
import type { PlainHandler } from "../observability/endpoints.js";
import { routeBySniffing } from "./sniff.js";

/** Configures `createServer`. */
export interface ServerOptions {
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  /** Browser origins allowed by CORS; "*" allows any. Default none. */
  corsAllowedOrigins?: string[];
  /**
   * PEM files; when set the server speaks TLS only. With `clientCaFile`,
   * clients may present a certificate signed by it; a verified one reaches
   * the interceptors as PEER_CERTIFICATE (unverified ones are ignored, not refused).
   */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string | null } | null;
  /** Largest accepted request message, in bytes. Default 1 MiB. */
  readMaxBytes?: number;
  /**
   * Time a connection has to send its first bytes, and an HTTP/2 connection to
   * open its first stream (complete HEADERS), an HTTP/1.1 request to complete
   * its headers, in ms. Default 10,000.
   */
  headersTimeoutMs?: number;
  /** An HTTP/2 connection with no open stream for this long gets GOAWAY, in ms. Default 300,000. */
  connectionIdleMs?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of the connect-node HTTP/2 servers. Default 1000. */
  maxConcurrentStreams?: number;
  /** Largest request header block (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE, HTTP/1.1 maxHeaderSize), in bytes. Default 16 KiB. */
  maxHeaderListBytes?: number;
  /** Serves cleartext HTTP/2 (gRPC) instead of connect-node (see the module comment). */
  grpcJs?: grpc.Server | null;
  /** Tried before the RPC handlers on HTTP/1.1 and TLS (e.g. /metrics, /readyz); true when it answered. */
  plain?: PlainHandler;
}

/** Holds a created, not yet listening server. */
export interface Server {
  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(port: number, host?: string): Promise<number>;
  /** Stops accepting connections, then closes open ones after `graceMs`. */
  close(graceMs: number): Promise<void>;
}

/** After GOAWAY, how long a session may take to close before it is destroyed. */
const GOAWAY_GRACE_MS = 1_000;

/**
 * RST_STREAM frames a client may send on one connection at once, refilled at
 * STREAM_RESET_RATE per second, on the connect-node HTTP/2 servers (h2c with
 * H2C_ADAPTER=connect, and TLS); a connection that sends more is closed
 * (GOAWAY). Against rapid reset (CVE-2023-44487): nghttp2's default burst of
 * 1,000 suits a server where a stream costs microseconds, but connect-node
 * spends about half a millisecond on each stream it admits, so 4 flooding
 * connections stalled ordinary calls for over 10 s (test/abuse/http2.test.ts).
 * A client that cancels more than 100 calls at once on one connection
 * reconnects. grpc-js (the default h2c server) keeps nghttp2's defaults: it
 * closes such a connection within about half a second.
 */
const STREAM_RESET_BURST = 100;
const STREAM_RESET_RATE = 33;

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/** Creates the server that serves every protocol on one port. */
export function createServer(options: ServerOptions): Server {
  const verifiesClients = Boolean(options.tls?.clientCaFile);
  const connect = connectNodeAdapter({
    routes: options.routes,
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes ?? 1024 * 1024,
    ...(verifiesClients ? { contextValues: (req) => createContextValues().set(PEER_CERTIFICATE, peerCertificateOf(req.socket as TLSSocket)) } : {}),
  }) as Handler;
  const rpc = withCors(connect, options.corsAllowedOrigins ?? []);
  const plain = options.plain;
  const handler: Handler = plain ? (req, res) => void (plain(req, res) || rpc(req, res)) : rpc;
  const sockets = new Set<net.Socket>();
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const idle = { firstStreamMs: headersTimeoutMs, idleMs: options.connectionIdleMs ?? 300_000 };

  let listener: net.Server;
  const maxHeaderListBytes = options.maxHeaderListBytes ?? 16 * 1024;
  // The HTTP/1.1 limits, for the plaintext h1 server and the TLS server's HTTP/1.1 fallback.
  const http1Options = { headersTimeout: headersTimeoutMs, connectionsCheckingInterval: Math.min(headersTimeoutMs, 30_000), maxHeaderSize: maxHeaderListBytes };
  const h1 = http.createServer(http1Options, handler);
  // Node starts checking headersTimeout (and requestTimeout) only when an http.Server emits
  // "listening"; h1 never listens (the sniffer hands it its sockets), so without this an HTTP/1.1
  // client could dribble its headers forever (test/abuse/connections.test.ts, slowloris).
  h1.emit("listening");
  const settings = { maxConcurrentStreams: options.maxConcurrentStreams ?? 1000, maxHeaderListSize: maxHeaderListBytes };
  const resetLimit = { streamResetBurst: STREAM_RESET_BURST, streamResetRate: STREAM_RESET_RATE };
  const h2 = http2.createServer({ settings, ...resetLimit }, handler);
  h2.on("session", (session) => trackSession(session, h2Sessions, idle));
  const injector = options.grpcJs ? injectorOf(options.grpcJs, (session) => trackSession(session, h2Sessions, idle)) : null;
  const h2c = injector ? (socket: net.Socket) => injector.injectConnection(socket) : (socket: net.Socket) => h2.emit("connection", socket);
  if (options.tls) {
    const secure = http2.createSecureServer(
      {
        cert: readFileSync(options.tls.certFile),
        key: readFileSync(options.tls.keyFile),
        allowHTTP1: true,
        ...http1Options, // read by Node for the HTTP/1.1 fallback (storeHTTPOptions)
        settings,
        ...resetLimit,
        ...(verifiesClients ? { ca: readFileSync(options.tls.clientCaFile!), requestCert: true, rejectUnauthorized: false } : {}),
      },
      handler,
    );
    secure.on("session", (session) => trackSession(session, h2Sessions, idle));
    listener = secure;
  } else {
    listener = net.createServer((socket) => routeBySniffing(socket, h1, h2c, headersTimeoutMs));
  }
  listener.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  return {
    listen(port, host = "0.0.0.0") {
      return new Promise((resolve, reject) => {
        listener.once("error", reject);
        listener.listen(port, host, () => {
          listener.off("error", reject);
          resolve((listener.address() as net.AddressInfo).port);
        });
      });
    },
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const session of h2Sessions) session.close();
      injector?.drain(graceMs);
      h1.close(); // closes idle connections and stops the headers-timeout checks; h1 never listened
      const timer = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
      injector?.destroy();
      options.grpcJs?.forceShutdown();
    },
  };
}

/**
 * Tracks an HTTP/2 session and closes it while it has no open stream: after
 * `firstStreamMs` if it never completes a stream's HEADERS (a preface alone,
 * or headers dribbled byte by byte), after `idleMs` once its streams are
 * done. Open streams (long Watch streams included) keep it open; a client
 * told GOAWAY reconnects on its next call.
 */
function trackSession(
  session: http2.ServerHttp2Session,
  sessions: Set<http2.ServerHttp2Session>,
  { firstStreamMs, idleMs }: { firstStreamMs: number; idleMs: number },
): void {
  sessions.add(session);
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const closeWhenIdle = (ms: number) => {
    timer = setTimeout(() => {
      session.close();
      setTimeout(() => session.destroy(), GOAWAY_GRACE_MS).unref();
    }, ms);
    timer.unref();
  };
  session.on("stream", (stream) => {
    clearTimeout(timer);
    open++;
    stream.once("close", () => {
      if (--open === 0 && !session.closed) closeWhenIdle(idleMs);
    });
  });
  session.once("close", () => {
    clearTimeout(timer);
    sessions.delete(session);
  });
  closeWhenIdle(firstStreamMs);
}

/**
 * Creates a connection injector for a grpc-js server and hands each of its
 * HTTP/2 sessions to `onSession` (idle and first-stream limits, shutdown).
 * grpc-js does not expose the sessions of an injector; its HTTP/2 server is
 * found in the server's `http2Servers` map (grpc-js 1.14, pinned; the
 * idle-connection tests fail if an upgrade moves it).
 */
function injectorOf(server: grpc.Server, onSession: (session: http2.ServerHttp2Session) => void) {
  const known = new Set(http2ServersOf(server));
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  for (const created of http2ServersOf(server)) if (!known.has(created)) created.on("session", onSession);
  return injector;
}

function http2ServersOf(server: grpc.Server): http2.Http2Server[] {
  const map = (server as unknown as { http2Servers?: Map<http2.Http2Server, unknown> }).http2Servers;
  return map instanceof Map ? [...map.keys()] : [];
}

/**
 * Returns the names of a client certificate the server's CA verified (subject
 * CN, then subjectAltName DNS and URI entries), or null when the client sent
 * none or one that did not verify.
 */
function peerCertificateOf(socket: TLSSocket): PeerCertificate | null {
  if (!socket.authorized) return null;
  const certificate = socket.getPeerCertificate();
  const names: string[] = [];
  const cn = certificate.subject?.CN;
  if (typeof cn === "string") names.push(cn);
  for (const entry of (certificate.subjectaltname ?? "").split(",")) {
    const match = /^\s*(DNS|URI):(.+)$/.exec(entry);
    if (match) names.push(match[2]!.trim());
  }
  return { names };
}

/** Adds CORS for the allowed browser origins, with Connect's method and header lists plus `authorization`. */
function withCors(next: Handler, origins: string[]): Handler {
  if (origins.length === 0) return next;
  const middleware = corsMiddleware({
    origin: origins.includes("*") ? true : origins,
    methods: [...connectCors.allowedMethods],
    allowedHeaders: [...connectCors.allowedHeaders, "Authorization"],
    exposedHeaders: [...connectCors.exposedHeaders],
    maxAge: 7200,
  });
  return (req, res) =>
    middleware(req as http.IncomingMessage, res as http.ServerResponse, () => next(req, res));
}
