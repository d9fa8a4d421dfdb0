/**
 * Encodes and decodes feed cursors.
 *
 * A cursor names a position in the global event order (tx_id, id): tx_id is
 * the id of the transaction that wrote the event (xid8), id orders events of
 * one transaction. Clients treat it as an opaque string. Format (v1):
 * base64url("1:<tx_id>:<id>"), both decimal, each 0 to 2^63-1.
 */
import { DomainError } from "./errors.js";

/** A point in the feed's total order, (tx_id, id) as the file header describes; compare with comparePositions. */
export interface FeedPosition {
  txId: bigint;
  id: bigint;
}

const MAX_INT8 = (1n << 63n) - 1n;
const FORMAT = /^1:(\d{1,19}):(\d{1,19})$/;

/** The position before every event (no transaction has xid 0): where the export and a watch from the beginning start. */
export const FEED_START: FeedPosition = { txId: 0n, id: 0n };

/** Encodes a position as a v1 cursor, base64url("1:<tx_id>:<id>"); clients see it as opaque. */
export function encodeCursor(position: FeedPosition): string {
  return Buffer.from(`1:${position.txId}:${position.id}`).toString("base64url");
}

/**
 * Decodes a cursor produced by `encodeCursor`.
 *
 * @throws DomainError INVALID_CURSOR if the string is not a cursor.
 */
export function decodeCursor(cursor: string): FeedPosition {
  const match = /^[A-Za-z0-9_-]{1,64}$/.test(cursor) ? FORMAT.exec(Buffer.from(cursor, "base64url").toString("latin1")) : null;
  const txId = match ? BigInt(match[1]!) : -1n;
  const id = match ? BigInt(match[2]!) : -1n;
  if (!match || txId > MAX_INT8 || id > MAX_INT8 || encodeCursor({ txId, id }) !== cursor) {
    throw new DomainError("INVALID_CURSOR", "after_cursor is not a cursor returned by this service");
  }
  return { txId, id };
}

/** Orders two positions: negative if a is before b, 0 if equal, positive after. */
export function comparePositions(a: FeedPosition, b: FeedPosition): number {
  if (a.txId !== b.txId) return a.txId < b.txId ? -1 : 1;
  return a.id === b.id ? 0 : a.id < b.id ? -1 : 1;
}

/**
 * Returns the last position below a visibility horizon: every event of a
 * transaction older than `horizon` lies at or before it.
 */
export function positionBelowHorizon(horizon: bigint): FeedPosition {
  return { txId: horizon - 1n, id: MAX_INT8 };
}
