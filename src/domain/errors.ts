/**
 * Domain errors: each has a stable `reason` (AIP-193 ErrorInfo.reason) and
 * optional metadata. The transport maps them to status codes in one place
 * (src/transport/errors.ts); nothing here knows about Connect or SQL.
 */

/**
 * Lists every reason the service returns. What each means on the wire (its
 * status code) is the transport's business: src/transport/errors.ts.
 */
export const REASONS = [
  "INVALID_REQUEST",
  "INVALID_PAGE_TOKEN",
  "INVALID_CURSOR",
  "RESERVED_EVENT_TYPE",
  "SESSION_NOT_FOUND",
  "RECORD_ID_REUSED",
  "ACTIVE_SESSION_EXISTS",
  "SESSION_ENDED",
  "SESSION_PAUSED",
  "CURSOR_EXPIRED",
  "TOO_MANY_STREAMS",
  "CREDENTIALS_MISSING",
  "CREDENTIALS_INVALID",
  "ROLE_NOT_ALLOWED",
  "USER_NOT_ALLOWED",
  "DATABASE_UNAVAILABLE",
  "SERVER_SHUTTING_DOWN",
] as const;

/** Names a stable error reason (AIP-193 ErrorInfo.reason). */
export type Reason = (typeof REASONS)[number];

/** Signals an expected failure with a stable reason that clients branch on. */
export class DomainError extends Error {
  /** When set, how long the caller should wait before retrying, in ms (sent as google.rpc.RetryInfo). */
  retryAfterMs: number | null = null;

  /**
   * @param metadata sent to clients as ErrorInfo metadata.
   * @param cause what went wrong underneath (e.g. the driver's error); logged, never sent.
   */
  constructor(
    readonly reason: Reason,
    message: string,
    readonly metadata: Record<string, string> = {},
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "DomainError";
  }
}

/** Creates an INVALID_REQUEST error for a rule the proto cannot express; the message starts with `field`, and the metadata names it. */
export function invalidRequest(field: string, message: string): DomainError {
  return new DomainError("INVALID_REQUEST", `${field}: ${message}`, { field });
}
