/**
 * Proves, in every run, that the checks can fail: it plants known faults in
 * copies of the run's own history and deliveries (the database is not
 * touched) and reports every planted fault a check did not find. A checker
 * that passes everything would otherwise look exactly like a clean run.
 */
import type { CheckResult } from "../test/replicas/feed-checker.js";
import { checkSubscriber } from "../test/replicas/feed-checker.js";
import type { Subscriber } from "../test/replicas/feed-subscriber.js";
import type { Sql } from "../src/db/database.js";
import { checkDatabase, type Anomaly, type DatabaseRows } from "./checker.js";
import type { Op } from "./history.js";

/** Returns one anomaly per planted fault that went unnoticed (none when every check bites). */
export async function checkTheChecks(sql: Sql, rows: DatabaseRows, ops: Op[], subscribers: Subscriber[]): Promise<Anomaly[]> {
  const missed: Anomaly[] = [];
  const expect = (planted: string, found: boolean) => {
    if (!found) missed.push({ kind: "checker-blind", detail: `a planted fault went unnoticed: ${planted}` });
  };
  const okAppend = ops.find((op) => op.kind === "append" && op.outcome === "ok");
  const okUpdate = ops.find((op) => op.kind === "update" && op.outcome === "ok");
  if (okAppend === undefined || okUpdate === undefined) {
    return [{ kind: "checker-blind", detail: "the run has no ok'd append or update to plant faults with" }];
  }
  const found = (anomalies: Anomaly[], kind: string, text: string) => anomalies.some((a) => a.kind === kind && a.detail.includes(text));

  // An event no operation wrote: drop the append's invocation from the history.
  expect(`event of ${okAppend.recordId} without its operation`, found(checkDatabase(rows, ops.filter((op) => op !== okAppend)), "unexpected", okAppend.recordId));
  // A failed operation that was stored: the update, answered as failed.
  const failed = ops.map((op) => (op === okUpdate ? { ...op, outcome: "fail" as const, error: "FAILED_PRECONDITION planted" } : op));
  expect(`stored ${okUpdate.recordId} answered as failed`, found(checkDatabase(rows, failed), "failed-but-present", okUpdate.recordId));
  // An ok'd operation that was never stored.
  const lost: Op = { ...okAppend, index: ops.length, recordId: "planted-lost-1", result: { eventId: "evt_planted" } };
  expect("an ok'd append that was never stored", found(checkDatabase(rows, [...ops, lost]), "lost", "planted-lost-1"));
  // Two open sessions: a second session.started for the user right after the first one.
  const firstStart = rows.events.findIndex((event) => event.type === "session.started");
  const doubled = { ...rows, events: rows.events.toSpliced(firstStart + 1, 0, { ...rows.events[firstStart]!, session_id: "sess_planted", event_id: "evt_planted_start" }) };
  expect("two open sessions of one user", found(checkDatabase(doubled, ops), "lifecycle", "two open sessions"));
  // A gap in seq.
  const withGap = { ...rows, events: rows.events.filter((event) => event.event_id !== okAppend.result!.eventId) };
  expect(`seq gap where ${okAppend.recordId}'s event was`, found(checkDatabase(withGap, ops), "state", "seq not dense"));

  // The feed: a skipped and a reordered delivery.
  const watcher = subscribers.find((subscriber) => subscriber.deliveries.length >= 3);
  if (watcher === undefined) return [...missed, { kind: "checker-blind", detail: "no watcher received 3 events to plant feed faults with" }];
  const skipped: Subscriber = { ...watcher, deliveries: watcher.deliveries.toSpliced(1, 1) };
  const swapped: Subscriber = { ...watcher, deliveries: [watcher.deliveries[1]!, watcher.deliveries[0]!, ...watcher.deliveries.slice(2)] };
  const [actual, skip, reorder]: CheckResult[] = await Promise.all([checkSubscriber(sql, watcher), checkSubscriber(sql, skipped), checkSubscriber(sql, swapped)]);
  // Relative to what the real deliveries gave, so a real anomaly does not hide (or fake) a planted one.
  expect(`watcher ${watcher.name} missing its second delivery`, skip!.skips === actual!.skips + 1);
  expect(`watcher ${watcher.name} with its first two deliveries swapped`, reorder!.reorders === actual!.reorders + 1);
  return missed;
}
