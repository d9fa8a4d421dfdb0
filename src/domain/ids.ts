/**
 * Generates resource ids: a type prefix plus a ULID (26 Crockford base32
 * characters, time-ordered to the millisecond, 80 random bits).
 */
import { getRandomValues } from "node:crypto";
import { ulid } from "ulid";

// ulid's default source asks the CSPRNG for one byte per character (16 calls
// per id, about 5% of a StartSession's CPU). This draws the same CSPRNG bytes
// 4 KiB at a time. A byte / 256 maps evenly onto the 32 ULID characters.
const pool = new Uint8Array(4096);
let next = pool.length;

function randomFraction(): number {
  if (next === pool.length) {
    getRandomValues(pool);
    next = 0;
  }
  return pool[next++]! / 256;
}

/** Returns a new session id, "sess_" + ULID. */
export function newSessionId(): string {
  return `sess_${ulid(undefined, randomFraction)}`;
}

/** Returns a new event id, "evt_" + ULID. */
export function newEventId(): string {
  return `evt_${ulid(undefined, randomFraction)}`;
}
