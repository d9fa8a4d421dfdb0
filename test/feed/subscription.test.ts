/**
 * The subscriber's bounded queue on its own (no database): what `offer`,
 * `take`, `detach` and `advance` do to its position, its resume point and its
 * queue, and what ends a `wait`.
 */
import { describe, expect, it } from "vitest";
import type { FeedPosition } from "../../src/domain/cursor.js";
import { encodeCursor } from "../../src/domain/cursor.js";
import type { SessionEvent } from "../../src/domain/session.js";
import { EVERYTHING } from "../../src/feed/filter.js";
import { createSubscriber, type EventFrame, type Subscriber } from "../../src/feed/subscription.js";
import { waitFor } from "../support/wait.js";

const START: FeedPosition = { txId: 100n, id: 0n };

/** Returns a position in transaction 100, so positions order by `id`. */
function at(id: number): FeedPosition {
  return { txId: 100n, id: BigInt(id) };
}

/** Builds the frame of an event at `at(id)`. */
function frame(id: number): EventFrame {
  const event: SessionEvent = {
    eventId: `evt-${id}`,
    userId: "user-1",
    sessionId: "sess-1",
    seq: id,
    recordId: `rec-${id}`,
    requestHash: "h",
    type: "test.event",
    eventTime: new Date(0),
    receiveTime: new Date(0),
    source: "test",
    performerId: "",
    payload: {},
    hash: "",
    position: at(id),
  };
  return { kind: "event", event, cursor: encodeCursor(event.position) };
}

/** Each test subscriber's tail: what the tail reader's tail would be. */
const tails = new WeakMap<Subscriber, { at: FeedPosition }>();

/** Creates a subscriber attached to a tail of its own at START. */
function subscriber(capacity = 4, signal = new AbortController().signal): Subscriber {
  const sub = createSubscriber({ filter: EVERYTHING, position: START, capacity, signal });
  const tail = { at: START };
  tails.set(sub, tail);
  sub.attach(() => tail.at);
  return sub;
}

/**
 * Hands over the frames of the range ending at `after` as the tail reader
 * does: offer them, then move the tail (the reader detaches a subscriber
 * whose offer was refused before it moves the tail, so the tail stays here).
 */
function offer(sub: Subscriber, batch: EventFrame[], after: FeedPosition): boolean {
  if (!sub.offer(batch)) return false;
  tails.get(sub)!.at = after;
  return true;
}

function takeAll(sub: ReturnType<typeof subscriber>): string[] {
  const ids: string[] = [];
  for (let next = sub.take(); next !== undefined; next = sub.take()) ids.push(next.event.eventId);
  return ids;
}

describe("subscriber queue", () => {
  it("queues an offer within capacity; its position is the tail, at the end of the range", () => {
    const sub = subscriber(4);
    expect(offer(sub, [frame(1), frame(2)], at(3))).toBe(true);
    expect(sub.queued()).toBe(2);
    expect(sub.position).toEqual(at(3));
    // An empty range still moves the position: its rows were skipped by the filter.
    expect(offer(sub, [], at(5))).toBe(true);
    expect(sub.queued()).toBe(2);
    expect(sub.position).toEqual(at(5));
    // Exactly full is still within capacity.
    expect(offer(sub, [frame(6), frame(7)], at(7))).toBe(true);
    expect(sub.queued()).toBe(4);
    expect(sub.position).toEqual(at(7));
  });

  it("refuses an offer over capacity and changes nothing", () => {
    const sub = subscriber(3);
    expect(offer(sub, [frame(1), frame(2)], at(2))).toBe(true);
    expect(offer(sub, [frame(3), frame(4)], at(4))).toBe(false);
    expect(sub.queued()).toBe(2);
    expect(sub.position).toEqual(at(2));
    expect(sub.cursor()).toEqual(START);
    expect(takeAll(sub)).toEqual(["evt-1", "evt-2"]);
  });

  it("yields frames in order; the cursor follows the last taken frame, and equals the position once empty", () => {
    const sub = subscriber(4);
    expect(sub.cursor()).toEqual(START);
    offer(sub, [frame(1), frame(2)], at(2));
    offer(sub, [frame(4)], at(9));
    // Nothing yielded yet: the resume point is still the start.
    expect(sub.cursor()).toEqual(START);
    expect(sub.take()?.event.eventId).toBe("evt-1");
    expect(sub.cursor()).toEqual(at(1));
    expect(sub.take()?.event.eventId).toBe("evt-2");
    expect(sub.cursor()).toEqual(at(2));
    expect(sub.queued()).toBe(1);
    expect(sub.take()?.event.eventId).toBe("evt-4");
    // Empty: rows 5 to 9 were skipped, so the resume point is the position, past the last frame.
    expect(sub.queued()).toBe(0);
    expect(sub.cursor()).toEqual(at(9));
    expect(sub.take()).toBeUndefined();
    // A new offer after the queue ran empty resumes from the position it had then.
    offer(sub, [frame(10)], at(10));
    expect(sub.cursor()).toEqual(at(9));
  });

  it("detach drops the queue and rewinds to the last yielded frame, so nothing queued is lost", () => {
    const sub = subscriber(4);
    offer(sub, [frame(1), frame(2), frame(3)], at(5));
    expect(sub.take()?.event.eventId).toBe("evt-1");
    sub.detach();
    expect(sub.attached).toBe(false);
    expect(sub.queued()).toBe(0);
    expect(sub.take()).toBeUndefined();
    // A table read continues after evt-1: evt-2 and evt-3 come again from the table.
    expect(sub.position).toEqual(at(1));
    expect(sub.cursor()).toEqual(at(1));
  });

  it("detach before anything was yielded rewinds to the start", () => {
    const sub = subscriber(4);
    offer(sub, [frame(1), frame(2)], at(2));
    sub.detach();
    expect(sub.position).toEqual(START);
    expect(sub.queued()).toBe(0);
  });

  it("advance moves a detached subscriber and throws while attached", () => {
    const sub = subscriber(4);
    expect(() => sub.advance(at(8))).toThrow();
    expect(sub.position).toEqual(START);
    sub.detach();
    sub.advance(at(8));
    expect(sub.position).toEqual(at(8));
    expect(sub.cursor()).toEqual(at(8));
  });
});

describe("subscriber wait", () => {
  // Long enough that only wake or abort can end a wait within a test.
  const LONG_MS = 60_000;

  /** Resolves "wait" if `wait` has ended by the next turn of the event loop, else "pending". */
  function settled(wait: Promise<void>): Promise<string> {
    return Promise.race([wait.then(() => "wait"), new Promise<string>((resolve) => setImmediate(() => resolve("pending")))]);
  }

  it("ends on wake; a wake with nobody waiting does not end the next wait", async () => {
    const controller = new AbortController();
    const sub = subscriber(4, controller.signal);
    const wait = sub.wait(LONG_MS);
    expect(await settled(wait)).toBe("pending");
    sub.wake();
    expect(await settled(wait)).toBe("wait");
    sub.wake();
    const next = sub.wait(LONG_MS);
    expect(await settled(next)).toBe("pending");
    controller.abort();
    await next;
  });

  it("ends on abort, and at once if already aborted", async () => {
    const controller = new AbortController();
    const sub = subscriber(4, controller.signal);
    const wait = sub.wait(LONG_MS);
    expect(await settled(wait)).toBe("pending");
    controller.abort();
    expect(await settled(wait)).toBe("wait");
    expect(await settled(sub.wait(LONG_MS))).toBe("wait");
  });

  it("ends on its timeout", async () => {
    const controller = new AbortController();
    const sub = subscriber(4, controller.signal);
    let ended = false;
    // Neither wake nor abort happens: only the 5 ms timeout can end it.
    void sub.wait(5).then(() => {
      ended = true;
    });
    await waitFor(() => ended, { timeoutMs: 5_000, message: "the wait to end by its timeout" });
    expect(controller.signal.aborted).toBe(false);
  });

  it("after a wake, a shorter wait still ends by its own timeout (the long wait's timer is not reused for it)", async () => {
    const sub = subscriber();
    const first = sub.wait(LONG_MS);
    sub.wake();
    await first;
    let ended = false;
    void sub.wait(5).then(() => {
      ended = true;
    });
    await waitFor(() => ended, { timeoutMs: 5_000, message: "the short wait to end by its timeout" });
  });

  it("after a wake, a longer wait does not end when the short wait's timer fires", async () => {
    const sub = subscriber();
    const first = sub.wait(5);
    sub.wake();
    await first;
    const began = performance.now();
    await sub.wait(150);
    // The 5 ms timer is still armed and fires first; the wait must outlast it to its own 150 ms.
    expect(performance.now() - began).toBeGreaterThanOrEqual(145);
  });

  it("close ends a pending wait", async () => {
    const sub = subscriber();
    const wait = sub.wait(LONG_MS);
    expect(await settled(wait)).toBe("pending");
    sub.close();
    expect(await settled(wait)).toBe("wait");
  });
});
