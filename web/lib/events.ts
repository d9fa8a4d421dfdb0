/**
 * Plain copies of the RPC messages (no bigint, no message classes) for the
 * console's views, the chain check and the download. Pure: no DOM.
 */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import type { ChainEvent } from "./chain.js";

/** An event as the console keeps it. */
export type ConsoleEvent = ChainEvent & { cursor: string };

/** RFC 3339 UTC with milliseconds, as the chain and the export write times ("" when unset). */
export function isoTime(timestamp: Timestamp | undefined): string {
  return timestamp === undefined ? "" : timestampDate(timestamp).toISOString();
}

/** Milliseconds since the epoch, or null when unset. */
export function epochMs(timestamp: Timestamp | undefined): number | null {
  return timestamp === undefined ? null : timestampDate(timestamp).getTime();
}

/** Copies a SessionEvent message into a ConsoleEvent. */
export function fromEventMessage(event: SessionEvent): ConsoleEvent {
  return {
    eventId: event.eventId,
    userId: event.userId,
    sessionId: event.sessionId,
    seq: Number(event.seq),
    recordId: event.recordId,
    type: event.type,
    eventTime: isoTime(event.eventTime),
    receiveTime: isoTime(event.receiveTime),
    source: event.source,
    performerId: event.performerId,
    payload: event.payload ?? {},
    hash: event.hash,
    payloadWithheld: event.payloadWithheld,
    cursor: event.cursor,
  };
}

/** Lifecycle events ("session.started", ...) are the service's own; the timeline sets them apart. */
export function isLifecycle(type: string): boolean {
  return type.startsWith("session.");
}

/**
 * Adds `incoming` events to `known` (both in seq order) without duplicates,
 * e.g. when a live stream resumes and repeats, or a reload overlaps it.
 */
export function mergeEvents(known: readonly ConsoleEvent[], incoming: readonly ConsoleEvent[]): ConsoleEvent[] {
  const bySeq = new Map<number, ConsoleEvent>();
  for (const e of known) bySeq.set(e.seq, e);
  for (const e of incoming) if (!bySeq.has(e.seq)) bySeq.set(e.seq, e);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}
