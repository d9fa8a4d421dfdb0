/**
 * The tail reader's hand-off (see src/feed/tail-reader.ts): who may attach,
 * what the fan-out queues for an attached subscriber, and how a full queue or
 * `remove` detaches it, against the real test database.
 *
 * Other test files write to the same table at the same time, so every
 * subscriber filters by a user of its own. The poll interval is long and
 * LISTEN is off: the reader reads when the test wakes it.
 */
import pino from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { comparePositions, FEED_START, type FeedPosition } from "../../src/domain/cursor.js";
import { toFilter } from "../../src/feed/filter.js";
import { createSubscriber, type Subscriber } from "../../src/feed/subscription.js";
import { createTailReader, type TailReader } from "../../src/feed/tail-reader.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { waitFor } from "../support/wait.js";
import { insertEvent, insertSession, positionOf, tableOrder } from "./feed-helpers.js";

const sql = openTestDatabase(4);
afterAll(() => sql.end());

const readers: TailReader[] = [];
afterEach(() => {
  for (const reader of readers.splice(0)) reader.close();
});

function startReader(): TailReader {
  const reader = createTailReader({ sql, pollMs: 60_000, pageSize: 100, channel: null, log: pino({ level: "silent" }) });
  readers.push(reader);
  return reader;
}

function subscriberFor(userId: string, position: FeedPosition, capacity = 100): Subscriber {
  return createSubscriber({ filter: toFilter({ userId, sessionId: "", types: [] }), position, capacity, signal: new AbortController().signal });
}

/** Wakes `reader` until its tail has reached `position`; returns the tail. */
function readPast(reader: TailReader, position: FeedPosition): Promise<FeedPosition> {
  return waitFor(
    () => {
      const tail = reader.tail();
      if (tail !== null && comparePositions(tail, position) >= 0) return tail;
      reader.wake();
      return null;
    },
    { message: "the tail to pass the last insert" },
  );
}

/** Starts a reader with `sub` attached at its first tail. */
async function attachedAtTail(sub: Subscriber): Promise<TailReader> {
  const reader = startReader();
  reader.add(sub);
  const tail = await waitFor(() => reader.tail(), { message: "the first tail read" });
  sub.advance(tail);
  expect(reader.tryAttach(sub)).toBe(true);
  return reader;
}

/** Inserts events for `userId` in one transaction; returns their event ids in insert order. */
async function insertEvents(userId: string, sessionId: string, seqs: number[]): Promise<string[]> {
  const ids = seqs.map(() => uniqueId("evt"));
  const tx = await sql.reserve();
  try {
    await tx`begin`;
    for (const [i, seq] of seqs.entries()) await insertEvent(tx, { userId, sessionId, seq, eventId: ids[i]! });
    await tx`commit`;
  } finally {
    tx.release();
  }
  return ids;
}

function takeAll(sub: Subscriber): string[] {
  const ids: string[] = [];
  for (let frame = sub.take(); frame !== undefined; frame = sub.take()) ids.push(frame.event.eventId);
  return ids;
}

describe("tail reader hand-off", () => {
  it("attaches a subscriber only when its position equals the tail", async () => {
    const reader = startReader();
    const sub = subscriberFor(uniqueId("user"), FEED_START);
    expect(reader.tryAttach(sub)).toBe(false);
    reader.add(sub);
    // The first read is in flight: there is no tail yet.
    expect(reader.tail()).toBeNull();
    expect(reader.tryAttach(sub)).toBe(false);
    const tail = await waitFor(() => reader.tail(), { message: "the first tail read" });

    expect(reader.tryAttach(sub)).toBe(false);
    expect(sub.attached).toBe(false);
    sub.advance({ txId: tail.txId, id: tail.id - 1n });
    expect(reader.tryAttach(sub)).toBe(false);
    sub.advance(tail);
    expect(reader.tryAttach(sub)).toBe(true);
    expect(sub.attached).toBe(true);
    expect(reader.stats()).toMatchObject({ subscribers: 1, attached: 1 });
  });

  it("queues exactly the subscriber's rows after its position and moves it to the new tail", async () => {
    const [mine, other] = [uniqueId("user"), uniqueId("user")];
    const sub = subscriberFor(mine, FEED_START);
    const reader = await attachedAtTail(sub);
    const start = sub.position;
    const [mySession, otherSession] = [uniqueId("sess"), uniqueId("sess")];
    await insertSession(sql, mine, mySession);
    await insertSession(sql, other, otherSession);
    const first = await insertEvents(mine, mySession, [1, 2]);
    await insertEvents(other, otherSession, [1]);
    const second = await insertEvents(mine, mySession, [3]);
    await insertEvents(other, otherSession, [2]);

    await readPast(reader, await positionOf(sql, second[0]!));
    // Checked in one synchronous step: a later read moves both together.
    expect(sub.attached).toBe(true);
    expect(sub.position).toEqual(reader.tail());
    const until = sub.position;
    expect(sub.queued()).toBe(3);
    const expected = (await tableOrder(sql, { userId: mine }, start, until)).map((row) => row.eventId);
    expect(expected).toEqual([...first, ...second]);
    expect(takeAll(sub)).toEqual(expected);
  });

  it("detaches a subscriber whose queue overflows and rewinds it to its cursor", async () => {
    const userId = uniqueId("user");
    const sub = subscriberFor(userId, FEED_START, 3);
    const reader = await attachedAtTail(sub);
    const sessionId = uniqueId("sess");
    await insertSession(sql, userId, sessionId);
    const [e1, e2] = await insertEvents(userId, sessionId, [1, 2]);
    await readPast(reader, await positionOf(sql, e2!));
    expect(sub.queued()).toBe(2);
    expect(sub.take()?.event.eventId).toBe(e1);
    const resumeAt = await positionOf(sql, e1!);
    expect(sub.cursor()).toEqual(resumeAt);

    // One queued frame plus three new rows exceed the capacity of 3.
    const later = await insertEvents(userId, sessionId, [3, 4, 5]);
    await readPast(reader, await positionOf(sql, later[2]!));
    expect(sub.attached).toBe(false);
    expect(sub.queued()).toBe(0);
    expect(sub.position).toEqual(resumeAt);
    expect(reader.stats()).toMatchObject({ subscribers: 1, attached: 0, overflows: 1 });
    // Nothing is lost: a table read from the rewound position returns the queued-but-not-yielded row first.
    const rest = (await tableOrder(sql, { userId }, sub.position, reader.tail()!)).map((row) => row.eventId);
    expect(rest).toEqual([e2, ...later]);
  });

  it("remove detaches an attached subscriber", async () => {
    const userId = uniqueId("user");
    const sub = subscriberFor(userId, FEED_START);
    const reader = await attachedAtTail(sub);
    const start = sub.position;
    const sessionId = uniqueId("sess");
    await insertSession(sql, userId, sessionId);
    const [e1] = await insertEvents(userId, sessionId, [1]);
    await readPast(reader, await positionOf(sql, e1!));
    expect(sub.queued()).toBe(1);

    reader.remove(sub);
    expect(sub.attached).toBe(false);
    expect(sub.queued()).toBe(0);
    expect(sub.position).toEqual(start);
    expect(reader.stats()).toMatchObject({ subscribers: 0, attached: 0 });
  });
});
