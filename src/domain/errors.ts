/**
 * Domain errors: each has a stable `reason` (AIP-193 ErrorInfo.reason) and
 * optional metadata. The transport maps them to status codes in one place
 * (src/transport/errors.ts); nothing here knows about Connect or SQL.
 */

/** Lists every reason the service returns, with the status it maps to. */
export const REASONS = {
  INVALID_REQUEST: "invalid_argument",
  INVALID_PAGE_TOKEN: "invalid_argument",
  INVALID_CURSOR: "invalid_argument",
  RESERVED_EVENT_TYPE: "invalid_argument",
  SESSION_NOT_FOUND: "not_found",
  RECORD_ID_REUSED: "already_exists",
  ACTIVE_SESSION_EXISTS: "failed_precondition",
  SESSION_ENDED: "failed_precondition",
  SESSION_PAUSED: "failed_precondition",
  CURSOR_EXPIRED: "out_of_range",
  DATABASE_UNAVAILABLE: "unavailable",
  SERVER_SHUTTING_DOWN: "unavailable",
} as const;

/** Names a stable error reason. */
export type Reason = keyof typeof REASONS;

/** Names the canonical status a reason maps to. */
export type StatusName = (typeof REASONS)[Reason];

/** Signals an expected failure with a stable reason that clients branch on. */
export class DomainError extends Error {
  constructor(
    readonly reason: Reason,
    message: string,
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
    this.name = "DomainError";
  }

  /** Returns the canonical status name of this error's reason. */
  get status(): StatusName {
    return REASONS[this.reason];
  }
}

/** Creates the error for a request that breaks a rule not expressible in the proto. */
export function invalidRequest(field: string, message: string): DomainError {
  return new DomainError("INVALID_REQUEST", `${field}: ${message}`, { field });
}
