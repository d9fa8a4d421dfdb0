/**
 * What a committed write transaction reports to the rest of the replica: the
 * feed wakes its readers, the metrics count events and observe how long each
 * ended session lasted. Built from the transaction's changes, and reported
 * only after COMMIT, so nothing rolled back is ever counted.
 */
import type { SessionChange } from "../domain/lifecycle.js";
import type { Session } from "../domain/session.js";

/** What one committed transaction wrote. */
export interface CommitReport {
  /** Events inserted (worker and lifecycle events alike). */
  events: number;
  /** Sessions this transaction ended (open before it, ENDED after), as they are now. */
  ended: Session[];
}

/** Receives the report of each committed transaction that wrote events. */
export type OnCommitted = (report: CommitReport) => void;

/** Returns the report of a transaction that stored `changes` (and `extraEvents` events outside them, e.g. a new session's started event). */
export function reportOf(changes: readonly SessionChange[], extraEvents = 0): CommitReport {
  return {
    events: changes.length + extraEvents,
    ended: changes.filter((change) => change.before.state !== "ended" && change.after.state === "ended").map((change) => change.after),
  };
}
