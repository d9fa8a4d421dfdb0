/**
 * Maps every error to what a client sees: the ONE place that turns domain
 * errors into Connect codes with a google.rpc.ErrorInfo detail (AIP-193).
 * Unexpected errors become INTERNAL with a fixed message; their cause is
 * kept for the log, never sent.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError, type Reason } from "../domain/errors.js";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** Names the ErrorInfo domain of every error this service returns. */
export const ERROR_DOMAIN = "sessionmanager";

/** Maps every domain reason to the status code clients receive with it (the README's error table). */
export const REASON_CODES: Record<Reason, Code> = {
  INVALID_REQUEST: Code.InvalidArgument,
  INVALID_PAGE_TOKEN: Code.InvalidArgument,
  INVALID_CURSOR: Code.InvalidArgument,
  RESERVED_EVENT_TYPE: Code.InvalidArgument,
  SESSION_NOT_FOUND: Code.NotFound,
  RECORD_ID_REUSED: Code.AlreadyExists,
  ACTIVE_SESSION_EXISTS: Code.FailedPrecondition,
  SESSION_ENDED: Code.FailedPrecondition,
  SESSION_PAUSED: Code.FailedPrecondition,
  CURSOR_EXPIRED: Code.OutOfRange,
  TOO_MANY_STREAMS: Code.ResourceExhausted,
  CREDENTIALS_MISSING: Code.Unauthenticated,
  CREDENTIALS_INVALID: Code.Unauthenticated,
  ROLE_NOT_ALLOWED: Code.PermissionDenied,
  USER_NOT_ALLOWED: Code.PermissionDenied,
  DATABASE_UNAVAILABLE: Code.Unavailable,
  SERVER_SHUTTING_DOWN: Code.Unavailable,
};

function errorInfo(reason: string, metadata: Record<string, string> = {}) {
  return { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) };
}

/**
 * Returns the ConnectError a client should receive for `error`.
 *
 * - DomainError: its reason's code, ErrorInfo with reason and metadata, and
 *   RetryInfo when it names a retry delay; its cause stays on the
 *   ConnectError (for the log), never on the wire.
 * - ConnectError INVALID_ARGUMENT from protovalidate or message parsing:
 *   kept, with ErrorInfo reason INVALID_REQUEST added.
 * - Other ConnectErrors (cancel, deadline, limits): kept as they are.
 * - Anything else: INTERNAL "internal error" with the error as its cause
 *   (the access log writes it at error level; clients never see it).
 */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof DomainError) {
    const details: ConstructorParameters<typeof ConnectError>[3] & object = [errorInfo(error.reason, error.metadata)];
    if (error.retryAfterMs !== null) {
      details.push({ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(error.retryAfterMs) }) });
    }
    return new ConnectError(error.message, REASON_CODES[error.reason], undefined, details, error.cause);
  }
  if (error instanceof ConnectError) {
    if (error.code === Code.InvalidArgument && error.findDetails(ErrorInfoSchema).length === 0) {
      error.details.push(errorInfo("INVALID_REQUEST"));
    }
    return error;
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}
