/**
 * Server interceptors: one access log line per call, error mapping
 * (src/transport/errors.ts) for unary calls and streams alike, and the RPC
 * metrics (src/observability/metrics.ts) through a CallObserver.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { context } from "@opentelemetry/api";
import type { Logger } from "pino";
import { PRINCIPAL } from "../auth/principal.js";
import type { CallLabels, CallObserver } from "../observability/metrics.js";
import { startRpcSpan } from "../observability/tracing.js";
import { toConnectError } from "./errors.js";
import { mapStream, type StreamHooks } from "./map-stream.js";

type Fields = Record<string, unknown>;

/** Picks the ids worth logging from a request or response; never payloads or metadata. */
function ids(message: unknown): Fields {
  const fields: Fields = {};
  if (typeof message !== "object" || message === null) return fields;
  const record = message as Record<string, unknown>;
  for (const key of ["sessionId", "recordId", "userId"] as const) {
    if (typeof record[key] === "string" && record[key] !== "") fields[key] = record[key];
  }
  const nested = (record.session ?? record.event) as Record<string, unknown> | undefined;
  if (nested && typeof nested.sessionId === "string" && !fields.sessionId) fields.sessionId = nested.sessionId;
  return fields;
}

/**
 * Node's errors for a request or response stream that its client reset or
 * abandoned. They can reach a handler before connect-node aborts the call's
 * signal (a RST_STREAM right after the headers fails the body read with
 * ERR_STREAM_PREMATURE_CLOSE first), so the signal alone misses them.
 */
const CLIENT_GONE_CODES = new Set([
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_STREAM_DESTROYED",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_INVALID_STREAM",
  "EPIPE",
]);

/**
 * Tells whether an error is one of Node's stream errors for a client that
 * reset or abandoned the call, also when connect-es wrapped it (a failed body
 * read becomes ConnectError INTERNAL with the Node error as its cause).
 */
function isResetError(error: unknown): boolean {
  for (let e = error, depth = 0; typeof e === "object" && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CLIENT_GONE_CODES.has(code)) return true;
  }
  return false;
}

function protocolOf(contentType: string): CallLabels["protocol"] {
  if (contentType.startsWith("application/grpc-web")) return "grpc_web";
  return contentType.startsWith("application/grpc") ? "grpc" : "connect";
}

const CALL_TYPES: Record<string, CallLabels["type"]> = {
  unary: "unary",
  server_streaming: "server_stream",
  client_streaming: "client_stream",
  bidi_streaming: "bidi_stream",
};

/**
 * Creates the interceptor that maps errors and logs each call with its RPC,
 * protocol (grpc, grpc_web, connect), principal, code, duration in ms, and
 * session_id / record_id / user_id when present; `observer` (the metrics)
 * sees every call's start, response messages and end.
 */
export function createAccessInterceptor(log: Logger, observer?: CallObserver): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const protocol = protocolOf(req.header.get("content-type") ?? "");
    const fields: Fields = { rpc: req.method.name, protocol };
    const request = req.stream ? undefined : req.message;
    const observed = observer?.started({
      type: CALL_TYPES[req.method.methodKind] ?? "unary",
      service: req.service.typeName,
      method: req.method.name,
      protocol,
    });
    const span = startRpcSpan(req.service.typeName, req.method.name, protocol, req.header);
    const done = (error: ConnectError | undefined, extra?: () => Fields) => {
      const codeName = error === undefined ? "OK" : Code[error.code];
      observed?.finished(codeName, (performance.now() - started) / 1000);
      const logFields = span.logFields();
      span.end(codeName, error?.code ?? 0);
      const level = error?.code === Code.Internal ? "error" : "info";
      if (!log.isLevelEnabled(level)) return;
      const principal = req.contextValues.get(PRINCIPAL);
      if (principal !== null) fields.principal = principal.id;
      if (request !== undefined) Object.assign(fields, ids(request));
      const code = error === undefined ? "ok" : Code[error.code];
      // The cause (e.g. the driver's error behind DATABASE_UNAVAILABLE) is logged, never sent.
      const cause = error?.cause === undefined || error.code === Code.Canceled ? {} : { err: error.cause };
      log[level]({ ...fields, ...logFields, ...extra?.(), code, ...cause, durationMs: Math.round(performance.now() - started) }, "rpc");
    };
    let res;
    try {
      res = await context.with(span.context, () => next(req));
    } catch (error) {
      const mapped = await classify(error, req);
      done(mapped);
      throw mapped;
    }
    if (!res.stream) {
      observed?.sent();
      const response = res.message;
      done(undefined, () => ids(response));
      return res;
    }
    // Changed in place, not spread: a spread would read (and so make) the grpc-js adapter's lazy header and trailer.
    const source = res.message;
    return Object.assign(res, { message: mapStream(() => source, new StreamLog(req, observed, done)) });
  };
}

/**
 * The access log's hooks on a response stream: counts frames for the
 * metrics and the log line, and logs the call when the stream ends or
 * fails. A class: every open stream holds one (three closures before).
 */
class StreamLog<T> implements StreamHooks<T, T> {
  private frames = 0;

  constructor(
    private readonly req: { stream: boolean; signal: AbortSignal },
    private readonly observed: ReturnType<CallObserver["started"]> | undefined,
    private readonly done: (error: ConnectError | undefined, extra?: () => Fields) => void,
  ) {}

  map(message: T): T {
    this.frames++;
    this.observed?.sent();
    return message;
  }

  /** A stream that stops because its client went away is logged as canceled. */
  end(): void {
    this.done(this.req.signal.aborted ? canceled() : undefined, () => ({ frames: this.frames }));
  }

  async fail(error: unknown): Promise<unknown> {
    const mapped = await classify(error, this.req);
    this.done(mapped, () => ({ frames: this.frames }));
    return mapped;
  }
}

/**
 * Maps a failed call's error for the client and the log. A client that
 * resets a stream before sending its request message ends the body early:
 * connect-es reports a missing input message before the stream's close event
 * aborts the call's signal, so for that error alone the abort is awaited
 * (at most RESET_WAIT_MS). Unary calls are judged by the error alone: their
 * signal also aborts once they finish normally.
 */
async function classify(error: unknown, req: { stream: boolean; signal: AbortSignal }): Promise<ConnectError> {
  if (isResetError(error)) return canceled();
  if (!req.stream) return toConnectError(error);
  if (!req.signal.aborted && isMissingInput(error)) await abortOf(req.signal, RESET_WAIT_MS);
  return req.signal.aborted ? canceled() : toConnectError(error);
}

const RESET_WAIT_MS = 100;

function isMissingInput(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.Unimplemented && error.rawMessage.startsWith("protocol error: missing input message");
}

function abortOf(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

function canceled(): ConnectError {
  return new ConnectError("canceled by the client", Code.Canceled);
}
