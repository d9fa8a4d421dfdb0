/**
 * Comparisons of a session_events row's feed position, (tx_id, id), with a
 * cursor position, as fragments for the feed and the export (keyset reads in
 * feed order). The columns are unqualified: use them where session_events is
 * the only table in scope.
 */
import type { FeedPosition } from "../domain/cursor.js";
import type { Executor } from "./database.js";

/** Selects the events after `position` in feed order (exclusive). */
export function afterPosition(ex: Executor, position: FeedPosition) {
  return ex`(tx_id, id) > (${position.txId.toString()}::xid8, ${position.id.toString()}::bigint)`;
}

/** Selects the events at or before `until` in feed order; with null, every event. */
export function untilPosition(ex: Executor, until: FeedPosition | null) {
  if (until === null) return ex``;
  return ex`and (tx_id, id) <= (${until.txId.toString()}::xid8, ${until.id.toString()}::bigint)`;
}
