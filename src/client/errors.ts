/**
 * Typed errors of the client: every failed call surfaces as a
 * `SessionManagerError` carrying the canonical code, the stable `reason` and
 * `metadata` of the server's `google.rpc.ErrorInfo` detail (README, "Errors";
 * the proto's comments list them per RPC), and the `google.rpc.RetryInfo`
 * delay when the server sent one.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** The ErrorInfo domain of this service's errors. */
export const ERROR_DOMAIN = "sessionmanager";

/**
 * A failed call. `reason` is the ErrorInfo reason (e.g. "ACTIVE_SESSION_EXISTS",
 * "SESSION_ENDED", "CURSOR_EXPIRED"), or "" when the error did not come from
 * this service's handlers (a network error, or one raised by Connect itself
 * before a handler ran). Branch on `code` and `reason`, never on `message`.
 */
export class SessionManagerError extends Error {
  override readonly name = "SessionManagerError";
  /** The canonical code (Connect's `Code` enum: `Code.FailedPrecondition`, ...). */
  readonly code: Code;
  /** The ErrorInfo reason, or "" when there was none. */
  readonly reason: string;
  /**
   * The ErrorInfo metadata, e.g. `{ session_id }` for ACTIVE_SESSION_EXISTS,
   * `{ earliest_cursor }` for CURSOR_EXPIRED, `{ scope }` for TOO_MANY_STREAMS,
   * `{ role, required }` for ROLE_NOT_ALLOWED. Empty when there was none.
   */
  readonly metadata: Readonly<Record<string, string>>;
  /** The RetryInfo delay in ms (TOO_MANY_STREAMS sends one), or null. */
  readonly retryDelayMs: number | null;
  /** The message without the code prefix. */
  readonly rawMessage: string;
  /** The underlying ConnectError (its `metadata` holds the response headers and trailers). */
  override readonly cause: ConnectError;

  constructor(cause: ConnectError) {
    const info = cause.findDetails(ErrorInfoSchema).find((detail) => detail.domain === ERROR_DOMAIN);
    const retry = cause.findDetails(RetryInfoSchema)[0];
    const reason = info?.reason ?? "";
    const code = resetCode(cause) ?? cause.code;
    super(`${codeName(code)}${reason === "" ? "" : ` ${reason}`}: ${cause.rawMessage}`);
    this.code = code;
    this.reason = reason;
    this.metadata = { ...(info?.metadata ?? {}) };
    this.retryDelayMs = retry?.retryDelay === undefined ? null : durationMs(retry.retryDelay);
    this.rawMessage = cause.rawMessage;
    this.cause = cause;
  }

  /** The code's name in SCREAMING_SNAKE_CASE as in the gRPC status table, e.g. "FAILED_PRECONDITION". */
  get codeName(): string {
    return codeName(this.code);
  }

  /** Converts anything thrown by a call: a SessionManagerError as is, anything else through `ConnectError.from`. */
  static from(error: unknown): SessionManagerError {
    return error instanceof SessionManagerError ? error : new SessionManagerError(ConnectError.from(error));
  }
}

/**
 * HTTP/2 resets that connect-node reports as INTERNAL when Node raises the
 * stream's "error" before its "close" (ERR_HTTP2_STREAM_ERROR, message "Stream
 * closed with error code NGHTTP2_..."), mapped as gRPC maps them
 * (doc/PROTOCOL-HTTP2.md, "Errors") and as connect-node does on "close".
 * Node's HTTP/2 server resets a new stream with ENHANCE_YOUR_CALM when the
 * connection already holds its limit of streams (SETTINGS_MAX_CONCURRENT_STREAMS,
 * counting streams the server's event loop has not yet cleaned up), so an
 * overloaded replica's refusal reads RESOURCE_EXHAUSTED, not INTERNAL.
 */
const RESET_CODES: Record<string, Code> = {
  NGHTTP2_ENHANCE_YOUR_CALM: Code.ResourceExhausted,
  NGHTTP2_REFUSED_STREAM: Code.Unavailable,
};

/** Returns the code of an HTTP/2 reset in `error`'s cause chain (see RESET_CODES), or null. */
function resetCode(error: ConnectError): Code | null {
  if (error.code !== Code.Internal) return null;
  const seen = new Set<unknown>();
  for (let current: unknown = error.cause; current instanceof Error && !seen.has(current); current = current.cause) {
    seen.add(current);
    if ((current as { code?: unknown }).code !== "ERR_HTTP2_STREAM_ERROR") continue;
    const name = /error code (NGHTTP2_[A-Z_]+)/.exec(current.message)?.[1];
    if (name !== undefined && name in RESET_CODES) return RESET_CODES[name]!;
  }
  return null;
}

/** Returns e.g. "FAILED_PRECONDITION" for `Code.FailedPrecondition`. */
export function codeName(code: Code): string {
  return (Code[code] ?? `CODE_${code}`).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
