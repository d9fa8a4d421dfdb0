/**
 * Server interceptors: one access log line per call, and error mapping
 * (src/transport/errors.ts) for unary calls and streams alike.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { toConnectError } from "./errors.js";

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

function protocolOf(contentType: string): string {
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  return contentType.startsWith("application/grpc") ? "grpc" : "connect";
}

/**
 * Creates the interceptor that maps errors and logs each call with its RPC,
 * code, duration in ms, and session_id / record_id / user_id when present.
 */
export function createAccessInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const fields: Fields = { rpc: req.method.name, protocol: protocolOf(req.header.get("content-type") ?? ""), ...(req.stream ? {} : ids(req.message)) };
    const done = (error: unknown, extra: Fields = {}) => {
      const code = error === undefined ? "ok" : Code[(error as ConnectError).code];
      const level = error !== undefined && (error as ConnectError).code === Code.Internal ? "error" : "info";
      log[level]({ ...fields, ...extra, code, durationMs: Math.round(performance.now() - started) }, "rpc");
    };
    let res;
    try {
      res = await next(req);
    } catch (error) {
      const mapped = toConnectError(error, log);
      done(mapped);
      throw mapped;
    }
    if (!res.stream) {
      done(undefined, ids(res.message));
      return res;
    }
    const source = res.message;
    return {
      ...res,
      message: (async function* () {
        let frames = 0;
        try {
          for await (const frame of source) {
            frames++;
            yield frame;
          }
        } catch (error) {
          // Writing to a stream whose client went away fails with EPIPE and the like: a cancel, not a bug.
          const mapped = req.signal.aborted ? new ConnectError("canceled by the client", Code.Canceled) : toConnectError(error, log);
          done(mapped, { frames });
          throw mapped;
        }
        // A stream that stops because its client went away is logged as canceled.
        if (req.signal.aborted) done(ConnectError.from(req.signal.reason ?? "canceled", Code.Canceled), { frames });
        else done(undefined, { frames });
      })(),
    };
  };
}
