/**
 * SQL of idempotency keys (AIP-155). A request's key (record_id) is unique per
 * user; the event a request wrote records it, and a request that wrote no
 * event leaves a row in request_records instead.
 */
import type { Session, SessionEvent } from "../domain/session.js";
import type { Executor, Transaction } from "./database.js";
import { toEvent, type EventRow } from "./rows.js";

/** Names whose keys to look in: a user's, or those of the user of a session. */
export type KeyOwner = { userId: string } | { sessionId: string };

/** A request's idempotency key and fingerprint, as `classifyRequest` compares them; a stored event has both too. */
export interface RequestRecord {
  recordId: string;
  requestHash: string;
}

/** Holds what an earlier request with an idempotency key left behind. */
export interface IdempotencyRecord {
  /** The event the request wrote; null if it wrote none (or the key is new). */
  event: SessionEvent | null;
  /** The request's record: its event, else its row in request_records; null for a new key. */
  record: RequestRecord | null;
}

/** Finds what the earlier request of `owner` with idempotency key `recordId` left behind. */
export async function findIdempotencyRecord(ex: Executor, owner: KeyOwner, recordId: string): Promise<IdempotencyRecord> {
  const [events, records] = await Promise.all([
    ex<EventRow[]>`
      select *
      from session_events
      where ${ownerCondition(ex, owner)}
        and record_id = ${recordId}
    `,
    ex<{ record_id: string; request_hash: string }[]>`
      select record_id, request_hash
      from request_records
      where ${ownerCondition(ex, owner)}
        and record_id = ${recordId}
    `,
  ]);
  const event = events[0] ? toEvent(events[0]) : null;
  const other = records[0] ? { recordId: records[0].record_id, requestHash: records[0].request_hash } : null;
  return { event, record: event ?? other };
}

/** Records a request that wrote no event, so its retries are recognised. */
export async function insertRequestRecord(tx: Transaction, session: Session, recordId: string, requestHash: string): Promise<void> {
  await tx`
    insert into request_records (user_id, record_id, request_hash, session_id)
    values (${session.userId}, ${recordId}, ${requestHash}, ${session.sessionId})
  `;
}

/** Selects the rows of `owner`'s user. */
function ownerCondition(ex: Executor, owner: KeyOwner) {
  return "userId" in owner
    ? ex`user_id = ${owner.userId}`
    : ex`user_id = (select user_id from sessions where session_id = ${owner.sessionId} limit 1)`;
}
