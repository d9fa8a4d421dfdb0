/**
 * One stream's place in the feed: its position, its bounded queue of frames
 * handed over by the tail reader's fan-out, and a way to wait for either.
 *
 * Positions mean (see src/domain/cursor.ts):
 * - `position`: every row at or before it was handed to the stream (queued or
 *   yielded) or skipped by its filter; nothing after it was. While the stream
 *   is attached it IS the tail reader's tail (read through the function given
 *   to `attach`): the fan-out touches only the streams a page has frames for,
 *   and every other attached stream skips the page by not being touched.
 * - `cursor()`: the stream's resume point as its client sees it: everything
 *   at or before it was yielded or skipped, nothing after it was yielded.
 *   It equals `position` when the queue is empty.
 *
 * The fast path: while the stream waits at the tail with nothing queued
 * (`wait(ms, true)`), `offer` writes frames straight to the stream's sink
 * (src/feed/push.ts) instead of queueing them and waking the stream. A
 * written frame counts as yielded (it moves the resume point), so the
 * queue, the cursor and the heartbeat clock (`lastFrameAt`) stay right
 * whichever way a frame left.
 */
import type { FeedFilter } from "../db/feed-repository.js";
import type { FeedPosition } from "../domain/cursor.js";
import type { SessionEvent } from "../domain/session.js";
import type { Sink } from "./push.js";

/** Holds one event frame; the fan-out hands the same object to every stream. */
export interface EventFrame {
  kind: "event";
  event: SessionEvent;
  cursor: string;
}

/**
 * One stream registered with the tail reader (see the module comment). Its
 * state changes only through these methods: the tail reader attaches,
 * offers and detaches; the stream takes, and advances while it reads the
 * table itself.
 */
export interface Subscriber {
  readonly filter: FeedFilter;
  /** Every row at or before it was queued, yielded or skipped (see the module comment). */
  readonly position: FeedPosition;
  /** True while the stream is at the tail and fed by the fan-out. */
  readonly attached: boolean;
  /** Returns the stream's resume point (see the module comment). */
  cursor(): FeedPosition;
  /** Returns how many frames wait in the queue. */
  queued(): number;
  /** When a frame last left the stream (yielded or written to the sink), Date.now() ms. */
  lastFrameAt: number;
  /** Sets where `offer` may write frames while the stream waits at the tail (see the module comment). */
  pushTo(sink: Sink<EventFrame>): void;
  /** Takes the next queued frame; the stream yields it at once. */
  take(): EventFrame | undefined;
  /**
   * Records that a table read (catch-up, while detached) delivered or
   * skipped every row up to `position`.
   *
   * @throws Error if attached: the fan-out alone moves an attached stream.
   */
  advance(position: FeedPosition): void;
  /**
   * Joins the fan-out; the tail reader calls it only when `position` equals
   * its tail. From then on `position` is `tail()`.
   */
  attach(tail: () => FeedPosition): void;
  /**
   * Takes the fan-out's frames of the range the tail reader is about to
   * move its tail over (call it before the tail moves): writes them to the
   * sink while the stream waits and the sink is ready, queues the rest.
   * Returns false, changing nothing, if they do not fit in the queue.
   */
  offer(batch: readonly EventFrame[]): boolean;
  /**
   * Leaves the fan-out: drops the queue and rewinds `position` to the resume
   * point, so table reads continue exactly after the last yielded frame.
   */
  detach(): void;
  /**
   * Waits until `wake`, `ms` or the stream's signal, whichever comes first.
   * One wait at a time (the stream's loop). Cheap when woken early, which is
   * the common case for a stream at the tail: the timer stays armed and the
   * next wait reuses it, so a frame costs no timer of its own. With
   * `pushable`, `offer` may write frames to the sink during the wait
   * (only when the stream's consumer has nothing in flight: it awaits the
   * stream's next frame).
   */
  wait(ms: number, pushable?: boolean): Promise<void>;
  /** Ends a pending `wait`. */
  wake(): void;
  /** Stops the timer and the abort listener; the stream has ended. */
  close(): void;
}

/** Configures `createSubscriber`. */
export interface SubscriberOptions {
  filter: FeedFilter;
  /** The stream's start position (its first resume point). */
  position: FeedPosition;
  /** Most frames the queue may hold before the stream is detached. */
  capacity: number;
  /** The stream's signal: its abort ends a pending `wait`, and every later one at once. */
  signal: AbortSignal;
}

/** Creates a subscriber: detached, with an empty queue. */
export function createSubscriber(options: SubscriberOptions): Subscriber {
  const { filter, capacity, signal } = options;
  let frames: EventFrame[] = [];
  let head = 0;
  // While detached: the position. While attached the position is `tailOf()`.
  let position = options.position;
  let tailOf: (() => FeedPosition) | null = null;
  // The resume point while the queue is not empty (see the module comment).
  let mark = options.position;
  let waiter: (() => void) | null = null;
  let pushable = false;
  let sink: Sink<EventFrame> | null = null;
  let lastFrameAt = Date.now();
  // The pending wait ends at `deadline` (performance.now() ms); the timer fires at `timerAt`, not later.
  let deadline = 0;
  let timer: NodeJS.Timeout | null = null;
  let timerAt = Infinity;

  const wake = (): void => {
    const resolve = waiter;
    waiter = null;
    pushable = false;
    resolve?.();
  };
  const arm = (ms: number): void => {
    timerAt = performance.now() + ms;
    timer = setTimeout(onTimer, ms);
  };
  function onTimer(): void {
    timer = null;
    timerAt = Infinity;
    if (waiter === null) return;
    const left = deadline - performance.now();
    if (left <= 0) wake();
    else arm(left);
  }
  signal.addEventListener("abort", wake, { once: true });

  const here = () => (tailOf === null ? position : tailOf());
  const queued = () => frames.length - head;
  const cursor = () => (head === frames.length ? here() : mark);

  return {
    filter,
    get position() {
      return here();
    },
    get attached() {
      return tailOf !== null;
    },
    cursor,
    queued,
    get lastFrameAt() {
      return lastFrameAt;
    },
    set lastFrameAt(at: number) {
      lastFrameAt = at;
    },

    pushTo(next) {
      sink = next;
    },

    take() {
      if (head === frames.length) return undefined;
      const frame = frames[head]!;
      frames[head++] = undefined as unknown as EventFrame; // let the event be collected
      mark = frame.event.position;
      if (head === frames.length) [frames, head] = [[], 0];
      return frame;
    },

    advance(to) {
      if (tailOf !== null) throw new Error("an attached subscriber moves only with the fan-out");
      position = to;
    },

    attach(tail) {
      tailOf = tail;
    },

    offer(batch) {
      // Checked first, so whatever the sink takes, the rest fits.
      if (queued() + batch.length > capacity) return false;
      let i = 0;
      if (pushable && sink !== null && head === frames.length) {
        for (; i < batch.length && sink.ready(); i++) {
          sink.write(batch[i]!);
          mark = batch[i]!.event.position;
        }
        if (i > 0) lastFrameAt = Date.now();
      }
      if (i < batch.length && head === frames.length && i === 0) mark = here();
      for (; i < batch.length; i++) frames.push(batch[i]!);
      return true;
    },

    detach() {
      position = cursor();
      [frames, head] = [[], 0];
      tailOf = null;
    },

    wait(ms, canPush = false) {
      if (signal.aborted) return Promise.resolve();
      pushable = canPush;
      deadline = performance.now() + Math.max(0, ms);
      if (timer === null) arm(Math.max(0, ms));
      else if (timerAt > deadline + 1) {
        clearTimeout(timer);
        arm(Math.max(0, ms));
      }
      return new Promise((resolve) => {
        waiter = resolve;
      });
    },

    wake,

    close() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      signal.removeEventListener("abort", wake);
      wake();
    },
  };
}
