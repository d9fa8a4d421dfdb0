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
    super(`${codeName(cause.code)}${reason === "" ? "" : ` ${reason}`}: ${cause.rawMessage}`);
    this.code = cause.code;
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

/** Returns e.g. "FAILED_PRECONDITION" for `Code.FailedPrecondition`. */
export function codeName(code: Code): string {
  return (Code[code] ?? `CODE_${code}`).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
