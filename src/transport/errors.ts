/**
 * Maps every error to what a client sees: the ONE place that turns domain
 * errors into Connect codes with a google.rpc.ErrorInfo detail (AIP-193).
 * Unexpected errors become INTERNAL with a fixed message; their cause is
 * logged, never sent.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DomainError, type StatusName } from "../domain/errors.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** Names the ErrorInfo domain of every error this service returns. */
export const ERROR_DOMAIN = "sessionmanager";

const CODES: Record<StatusName, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  out_of_range: Code.OutOfRange,
  unavailable: Code.Unavailable,
};

function errorInfo(reason: string, metadata: Record<string, string> = {}) {
  return { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) };
}

/**
 * Returns the ConnectError a client should receive for `error`.
 *
 * - DomainError: its reason's code, ErrorInfo with reason and metadata.
 * - ConnectError INVALID_ARGUMENT from protovalidate or message parsing:
 *   kept, with ErrorInfo reason INVALID_REQUEST added.
 * - Other ConnectErrors (cancel, deadline, limits): kept as they are.
 * - Anything else: INTERNAL "internal error", logged with its cause.
 */
export function toConnectError(error: unknown, log: Logger): ConnectError {
  if (error instanceof DomainError) {
    return new ConnectError(error.message, CODES[error.status], undefined, [errorInfo(error.reason, error.metadata)]);
  }
  if (error instanceof ConnectError) {
    if (error.code === Code.InvalidArgument && error.findDetails(ErrorInfoSchema).length === 0) {
      error.details.push(errorInfo("INVALID_REQUEST"));
    }
    return error;
  }
  log.error({ err: error }, "unexpected error");
  return new ConnectError("internal error", Code.Internal);
}
