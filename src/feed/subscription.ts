/**
 * One stream's place in the feed: its position, its bounded queue of frames
 * handed over by the tail reader's fan-out, and a way to wait for either.
 *
 * Positions mean (see src/domain/cursor.ts):
 * - `position`: every row at or before it was handed to the stream (queued or
 *   yielded) or skipped by its filter; nothing after it was.
 * - `cursor()`: the stream's resume point as its client sees it: everything
 *   at or before it was yielded or skipped, nothing after it was yielded.
 *   It equals `position` when the queue is empty.
 */
import type { FeedFilter } from "../db/feed-repository.js";
import type { FeedPosition } from "../domain/cursor.js";
import type { SessionEvent } from "../domain/session.js";

/** Holds one event frame; the fan-out hands the same object to every stream. */
export interface EventFrame {
  kind: "event";
  event: SessionEvent;
  cursor: string;
}

/** Names a stream registered with the tail reader (see the module comment). */
export type Subscriber = ReturnType<typeof createSubscriber>;

/** Configures `createSubscriber`. */
export interface SubscriberOptions {
  filter: FeedFilter;
  /** The stream's start position (its first resume point). */
  position: FeedPosition;
  /** Most frames the queue may hold before the stream is detached. */
  capacity: number;
}

/** Creates a subscriber: detached, with an empty queue. */
export function createSubscriber(options: SubscriberOptions) {
  const { filter, capacity } = options;
  let frames: EventFrame[] = [];
  let head = 0;
  // The resume point while the queue is not empty (see the module comment).
  let mark = options.position;
  let waiter: (() => void) | null = null;

  const subscriber = {
    filter,
    position: options.position,
    /** True while the stream is at the tail and fed by the fan-out. */
    attached: false,

    /** Returns the stream's resume point (see the module comment). */
    cursor(): FeedPosition {
      return head === frames.length ? subscriber.position : mark;
    },

    /** Returns how many frames wait in the queue. */
    queued(): number {
      return frames.length - head;
    },

    /** Takes the next queued frame; the stream yields it at once. */
    take(): EventFrame | undefined {
      if (head === frames.length) return undefined;
      const frame = frames[head]!;
      frames[head++] = undefined as unknown as EventFrame; // let the event be collected
      mark = frame.event.position;
      if (head === frames.length) [frames, head] = [[], 0];
      return frame;
    },

    /**
     * Queues the fan-out's frames for the range ending at `after` and moves
     * `position` there. Returns false, changing nothing, if they do not fit.
     */
    offer(batch: EventFrame[], after: FeedPosition): boolean {
      if (subscriber.queued() + batch.length > capacity) return false;
      if (batch.length > 0 && head === frames.length) mark = subscriber.position;
      frames.push(...batch);
      subscriber.position = after;
      return true;
    },

    /**
     * Leaves the fan-out: drops the queue and rewinds `position` to the resume
     * point, so table reads continue exactly after the last yielded frame.
     */
    detach(): void {
      subscriber.position = subscriber.cursor();
      [frames, head] = [[], 0];
      subscriber.attached = false;
    },

    /** Waits until `wake`, `ms` or `signal`, whichever comes first. */
    wait(ms: number, signal: AbortSignal): Promise<void> {
      if (signal.aborted) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          if (waiter === done) waiter = null;
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, ms));
        signal.addEventListener("abort", done, { once: true });
        waiter = done;
      });
    },

    /** Ends a pending `wait`. */
    wake(): void {
      waiter?.();
    },
  };
  return subscriber;
}
