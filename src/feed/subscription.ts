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
  return new QueuedSubscriber(options);
}

/**
 * The subscriber. A class, not a closure per method: 10,000 open streams
 * each hold one (about 1 KiB per stream less than an object of closures).
 */
class QueuedSubscriber implements Subscriber {
  readonly filter: FeedFilter;
  lastFrameAt = Date.now();
  private readonly capacity: number;
  private readonly signal: AbortSignal;
  private frames: EventFrame[] = [];
  private head = 0;
  // While detached: the position. While attached the position is `tailOf()`.
  private own: FeedPosition;
  private tailOf: (() => FeedPosition) | null = null;
  // The resume point while the queue is not empty (see the module comment).
  private mark: FeedPosition;
  private waiter: (() => void) | null = null;
  private pushable = false;
  private sink: Sink<EventFrame> | null = null;
  // The pending wait ends at `deadline` (performance.now() ms); the timer fires at `timerAt`, not later.
  private deadline = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;

  constructor(options: SubscriberOptions) {
    this.filter = options.filter;
    this.capacity = options.capacity;
    this.signal = options.signal;
    this.own = options.position;
    this.mark = options.position;
    this.signal.addEventListener("abort", this.wake, { once: true });
  }

  get position(): FeedPosition {
    return this.tailOf === null ? this.own : this.tailOf();
  }

  get attached(): boolean {
    return this.tailOf !== null;
  }

  cursor(): FeedPosition {
    return this.head === this.frames.length ? this.position : this.mark;
  }

  queued(): number {
    return this.frames.length - this.head;
  }

  pushTo(sink: Sink<EventFrame>): void {
    this.sink = sink;
  }

  take(): EventFrame | undefined {
    if (this.head === this.frames.length) return undefined;
    const frame = this.frames[this.head]!;
    this.frames[this.head++] = undefined as unknown as EventFrame; // let the event be collected
    this.mark = frame.event.position;
    if (this.head === this.frames.length) this.clear();
    return frame;
  }

  advance(to: FeedPosition): void {
    if (this.tailOf !== null) throw new Error("an attached subscriber moves only with the fan-out");
    this.own = to;
  }

  attach(tail: () => FeedPosition): void {
    this.tailOf = tail;
  }

  offer(batch: readonly EventFrame[]): boolean {
    // Checked first, so whatever the sink takes, the rest fits.
    if (this.queued() + batch.length > this.capacity) return false;
    let i = 0;
    const sink = this.sink;
    if (this.pushable && sink !== null && this.head === this.frames.length) {
      for (; i < batch.length && sink.ready(); i++) {
        sink.write(batch[i]!);
        this.mark = batch[i]!.event.position;
      }
      if (i > 0) this.lastFrameAt = Date.now();
    }
    if (i === 0 && batch.length > 0 && this.head === this.frames.length) this.mark = this.position;
    for (; i < batch.length; i++) this.frames.push(batch[i]!);
    return true;
  }

  detach(): void {
    this.own = this.cursor();
    this.clear();
    this.tailOf = null;
  }

  wait(ms: number, pushable = false): Promise<void> {
    if (this.signal.aborted) return Promise.resolve();
    this.pushable = pushable;
    this.deadline = performance.now() + Math.max(0, ms);
    if (this.timer === null) this.arm(Math.max(0, ms));
    else if (this.timerAt > this.deadline + 1) {
      clearTimeout(this.timer);
      this.arm(Math.max(0, ms));
    }
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Bound: the signal's abort listener. */
  readonly wake = (): void => {
    const resolve = this.waiter;
    this.waiter = null;
    this.pushable = false;
    resolve?.();
  };

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.signal.removeEventListener("abort", this.wake);
    this.wake();
  }

  private clear(): void {
    this.frames = [];
    this.head = 0;
  }

  private arm(ms: number): void {
    this.timerAt = performance.now() + ms;
    this.timer = setTimeout(this.onTimer, ms);
  }

  /** Bound: the timer's callback. */
  private readonly onTimer = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.waiter === null) return;
    const left = this.deadline - performance.now();
    if (left <= 0) this.wake();
    else this.arm(left);
  };
}
