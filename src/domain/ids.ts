/**
 * Generates resource ids: a type prefix plus a ULID (26 Crockford base32
 * characters, time-ordered to the millisecond, 80 random bits).
 */
import { ulid } from "ulid";

/** Returns a new session id, "sess_" + ULID. */
export function newSessionId(): string {
  return `sess_${ulid()}`;
}

/** Returns a new event id, "evt_" + ULID. */
export function newEventId(): string {
  return `evt_${ulid()}`;
}
