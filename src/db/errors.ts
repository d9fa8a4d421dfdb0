/**
 * Classifies errors raised by postgres.js, so the service can tell "the
 * database is unreachable" and "retry this transaction" from real bugs, and
 * maps the first to the domain error callers see.
 */
import { DomainError } from "../domain/errors.js";

const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EHOSTDOWN",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);

const RETRYABLE_CODES = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "23505", // unique_violation: a concurrent writer won; re-reading gives the answer
]);

/** Returns the error's `code` (SQLSTATE, errno name or postgres.js code), or "". */
export function codeOf(error: unknown): string {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : "";
}

/**
 * Tells whether the error means the database cannot be reached: a code above,
 * SQLSTATE class 08, or any failed connect(2) (the network's answer, whatever
 * its errno: a blackhole route gives EINVAL, a prohibit route EACCES; found by
 * the chaos harness's partitions, chaos/repro/database-unreachable.ts).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = codeOf(error);
  return UNAVAILABLE_CODES.has(code) || code.startsWith("08") || syscallOf(error) === "connect";
}

function syscallOf(error: unknown): string {
  return typeof error === "object" && error !== null && "syscall" in error ? String(error.syscall) : "";
}

/**
 * Tells whether a hot standby cancelled the statement to let replay continue
 * ("canceling statement due to conflict with recovery": SQLSTATE 40001, seen
 * on PostgreSQL 18); src/db/read-pools.ts retries such reads.
 */
export function isRecoveryConflict(error: unknown): boolean {
  return codeOf(error) === "40001" && /conflict with recovery/i.test(error instanceof Error ? error.message : "");
}

/** Tells whether running the same transaction again may succeed. */
export function isRetryable(error: unknown): boolean {
  return RETRYABLE_CODES.has(codeOf(error));
}

/**
 * Maps a database error to the error callers should see: a connection
 * failure (see `isDatabaseUnavailable`) becomes DomainError
 * DATABASE_UNAVAILABLE with the driver's error as its `cause`; a DomainError
 * and anything else (a bug) are returned unchanged.
 */
export function toDomainError(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  if (isDatabaseUnavailable(error)) {
    return new DomainError("DATABASE_UNAVAILABLE", "the database is unavailable; retry later", {}, error);
  }
  return error;
}
