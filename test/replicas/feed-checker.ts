/**
 * Compares what a subscriber received with the event table: the events that
 * match its filter after its start cursor, up to the last cursor it received,
 * in feed order (tx_id, id). Any skip, duplicate or reorder is reported.
 */
import type { Sql } from "../../src/db/database.js";
import { comparePositions, decodeCursor, FEED_START } from "../../src/domain/cursor.js";
import type { Subscriber } from "./feed-subscriber.js";

/** Holds the outcome of checking one subscriber. */
export interface CheckResult {
  name: string;
  filter: string;
  segments: number;
  delivered: number;
  expected: number;
  /** Expected events never delivered. */
  skips: number;
  /** Deliveries of an event already delivered. */
  duplicates: number;
  /** Deliveries that came before an event that precedes them in the table. */
  reorders: number;
  /** Deliveries of events that are not in the expected set. */
  unexpected: number;
  errors: string;
  /** Where the first duplicate or reorder happened, for diagnosis; "" if none. */
  firstAnomaly: string;
  deliveredIds: string[];
  expectedIds: string[];
}

/** Reads the events `subscriber` should have received, in feed order. */
export async function expectedEventIds(sql: Sql, subscriber: Subscriber): Promise<string[]> {
  const start = subscriber.startCursor === "" ? FEED_START : decodeCursor(subscriber.startCursor);
  const end = decodeCursor(subscriber.cursor);
  const { userId, types } = subscriber.filter;
  const exact = types.filter((type) => !type.endsWith(".*"));
  const prefixes = types.filter((type) => type.endsWith(".*")).map((type) => `${type.slice(0, -1).replace(/[\\%_]/g, "\\$&")}%`);
  const rows = await sql<{ event_id: string }[]>`
    select event_id
    from session_events
    where (tx_id, id) > (${start.txId.toString()}::xid8, ${start.id.toString()}::bigint)
      and (tx_id, id) <= (${end.txId.toString()}::xid8, ${end.id.toString()}::bigint)
      ${userId === "" ? sql`` : sql`and user_id = ${userId}`}
      ${types.length === 0 ? sql`` : sql`and (type = any(${exact}::text[]) or type like any(${prefixes}::text[]))`}
    order by tx_id, id
  `;
  return rows.map((row) => row.event_id);
}

/** Checks one subscriber against the table. */
export async function checkSubscriber(sql: Sql, subscriber: Subscriber): Promise<CheckResult> {
  const expectedIds = await expectedEventIds(sql, subscriber);
  const deliveredIds = subscriber.deliveries.map((delivery) => delivery.eventId);
  const rank = new Map(expectedIds.map((id, index) => [id, index]));
  const seen = new Set<string>();
  let duplicates = 0;
  let reorders = 0;
  let unexpected = 0;
  let highest = -1;
  let firstAnomaly = "";
  for (const [at, id] of deliveredIds.entries()) {
    const duplicate = seen.has(id);
    if (duplicate) duplicates += 1;
    seen.add(id);
    const index = rank.get(id);
    if (index === undefined) {
      unexpected += 1;
      continue;
    }
    const reordered = index < highest;
    if (reordered) reorders += 1;
    if ((duplicate || reordered) && firstAnomaly === "") firstAnomaly = describeAnomaly(subscriber, at, duplicate ? "duplicate" : "reorder");
    highest = Math.max(highest, index);
  }
  if (firstAnomaly === "") {
    const missing = expectedIds.find((id) => !seen.has(id));
    if (missing !== undefined) firstAnomaly = await describeSkip(sql, subscriber, missing);
  }
  return {
    name: subscriber.name,
    filter: describeFilter(subscriber),
    segments: subscriber.segments,
    delivered: deliveredIds.length,
    expected: expectedIds.length,
    skips: expectedIds.filter((id) => !seen.has(id)).length,
    duplicates,
    reorders,
    unexpected,
    errors: Object.entries(subscriber.errors)
      .map(([code, count]) => `${code}:${count}`)
      .join(" "),
    firstAnomaly,
    deliveredIds,
    expectedIds,
  };
}

/** Describes the journal around the first expected event that never arrived. */
async function describeSkip(sql: Sql, subscriber: Subscriber, eventId: string): Promise<string> {
  const [row] = await sql<{ tx_id: string; id: string }[]>`
    select tx_id::text as tx_id, id
    from session_events
    where event_id = ${eventId}
  `;
  const missing = { txId: BigInt(row!.tx_id), id: BigInt(row!.id) };
  const journal = subscriber.journal;
  const next = journal.findIndex((entry) => entry.cursor !== "" && entry.kind !== "open" && comparePositions(decodeCursor(entry.cursor), missing) > 0);
  const at = next === -1 ? journal.length : next;
  const lines = journal.slice(Math.max(0, at - 8), at + 3).map((entry) => {
    const position = entry.cursor === "" ? "" : ` pos ${formatPosition(decodeCursor(entry.cursor))}`;
    return `  seg ${entry.segment} ${entry.kind}${position} ${entry.detail}`;
  });
  return `skip: ${eventId} at pos ${formatPosition(missing)} never arrived; journal around it:\n${lines.join("\n")}`;
}

function formatPosition(position: { txId: bigint; id: bigint }): string {
  return `${position.txId}:${position.id}`;
}

/** Describes the deliveries around position `at`: index, segment, feed position and event id. */
function describeAnomaly(subscriber: Subscriber, at: number, kind: string): string {
  const around = subscriber.deliveries.slice(Math.max(0, at - 3), at + 2).map((delivery, offset) => {
    const position = decodeCursor(delivery.cursor);
    const index = Math.max(0, at - 3) + offset;
    return `${index === at ? ">" : " "}#${index} seg ${delivery.segment} pos ${position.txId}:${position.id} ${delivery.eventId}`;
  });
  return `${kind} at delivery #${at}:\n${around.join("\n")}`;
}

function describeFilter(subscriber: Subscriber): string {
  const parts = [];
  if (subscriber.filter.userId !== "") parts.push(`user=${subscriber.filter.userId.replace(/^.*-(w\d+)$/, "$1")}`);
  if (subscriber.filter.types.length > 0) parts.push(`types=${subscriber.filter.types.join(",")}`);
  if (parts.length === 0) parts.push("all");
  return `${parts.join(" ")}${subscriber.startCursor === "" ? " (from start)" : " (from head)"}`;
}

/** Prints one line per subscriber and a total. */
export function printResults(title: string, results: CheckResult[]): void {
  const rows = results.map(({ deliveredIds: _d, expectedIds: _e, firstAnomaly: _a, ...row }) => row);
  console.log(`\n${title}`);
  console.table(rows);
  for (const result of results) if (result.firstAnomaly !== "") console.log(`${result.name}: ${result.firstAnomaly}`);
  const total = (key: "delivered" | "expected" | "skips" | "duplicates" | "reorders" | "unexpected" | "segments") =>
    results.reduce((sum, result) => sum + result[key], 0);
  console.log(
    `${title}: ${results.length} subscribers, ${total("segments")} streams, ${total("delivered")} deliveries of ${total("expected")} expected; ` +
      `skips ${total("skips")}, duplicates ${total("duplicates")}, reorders ${total("reorders")}, unexpected ${total("unexpected")}`,
  );
}
