/**
 * The per-session hash chain that makes the event log tamper-evident.
 *
 * hash(event) = lowercase hex SHA-256 of the RFC 8785 canonical JSON (`jcs`)
 * of {v: 1, previous_hash, event_id, user_id, session_id, seq, record_id,
 * type, event_time, receive_time, source, performer_id, payload}, times as
 * RFC 3339 UTC with milliseconds, previous_hash "" for seq 1. An auditor can
 * recompute it from an export without this code, with any RFC 8785 library.
 *
 * Events written before the chain used RFC 8785 were hashed with
 * `canonicalJson`, which puts array-index keys ("9", "10") first in numeric
 * order; the two forms differ only for payloads with such keys out of
 * UTF-16 order, and `verifyChain` accepts either form for a link.
 */
import { createHash } from "node:crypto";
import { canonicalJson, jcs } from "./json.js";
import type { NewSessionEvent } from "./session.js";

/** Every event field the hash covers: all but `hash` itself and `requestHash`, which exports do not carry. */
export type ChainedFields = Omit<NewSessionEvent, "hash" | "requestHash">;

/** Computes an event's link from the previous link ("" for seq 1). */
export function chainHash(previousHash: string, event: ChainedFields, serialize: (value: unknown) => string = jcs): string {
  const text = serialize({
    v: 1,
    previous_hash: previousHash,
    event_id: event.eventId,
    user_id: event.userId,
    session_id: event.sessionId,
    seq: event.seq,
    record_id: event.recordId,
    type: event.type,
    event_time: event.eventTime.toISOString(),
    receive_time: event.receiveTime.toISOString(),
    source: event.source,
    performer_id: event.performerId,
    payload: event.payload,
  });
  return createHash("sha256").update(text).digest("hex");
}

/** Tells whether `event.hash` is its link from `previousHash`, in RFC 8785 form or the earlier `canonicalJson` form. */
function linksTo(previousHash: string, event: NewSessionEvent): boolean {
  return event.hash === chainHash(previousHash, event) || event.hash === chainHash(previousHash, event, canonicalJson);
}

/**
 * What verifyChain found first: `seq` is the first event that fails (missing,
 * altered, or one past the log's end); `problem` is a sentence for the operator.
 */
export interface BrokenLink {
  sessionId: string;
  seq: number;
  problem: string;
}

/**
 * Checks one session's events (in seq order) against their chain and the
 * session's stored head.
 *
 * @returns the first broken link, or null if the chain holds.
 */
export function verifyChain(sessionId: string, events: NewSessionEvent[], lastSeq: number, lastHash: string): BrokenLink | null {
  let previous = "";
  for (const [index, event] of events.entries()) {
    if (event.seq !== index + 1) return { sessionId, seq: index + 1, problem: `event seq ${index + 1} is missing (found ${event.seq})` };
    if (!linksTo(previous, event)) return { sessionId, seq: event.seq, problem: "hash does not match the event's content and the previous link" };
    previous = event.hash;
  }
  if (events.length !== lastSeq) return { sessionId, seq: events.length + 1, problem: `session says last_seq ${lastSeq}, log has ${events.length} events` };
  if (previous !== lastHash) return { sessionId, seq: lastSeq, problem: "session's last_hash does not match its last event" };
  return null;
}
