/**
 * The replica's shared tail reader: reads every new row (no filter) once per
 * wake-up, in pages, and fans the rows out to the streams at the tail.
 *
 * Hand-off invariant (why nothing is lost or repeated):
 * - `tail` is a position below an earlier horizon: every row at or before it
 *   belongs to a finished transaction, so the set of rows up to `tail` never
 *   changes again.
 * - A read covers exactly the range (before, after] with before = `tail`,
 *   and `tail` becomes `after` in the same synchronous step that hands the
 *   range's rows to the attached subscribers (`fanOut`).
 * - A subscriber is attached only while its `position` equals `tail`
 *   (`tryAttach` checks it; a read may be in flight, which then covers
 *   (position, after] for it too), and from then on its position IS `tail`
 *   (see src/feed/subscription.ts). So each range reaches each attached
 *   subscriber exactly once, and starts exactly where it stands. The fan-out
 *   visits only the subscribers a page has rows for (an index by the
 *   filter's user): the cost of a page is its deliveries, not the number of
 *   streams.
 * - A detached subscriber reads the table from its own position with its own
 *   filter, bounded by `tail`: catch-up and live are the same cursor-driven
 *   read, and the fan-out only spares the repeated queries.
 * - Overflow (queue full) detaches and rewinds to the stream's resume point.
 */
import type { Logger } from "pino";
import type { Sql } from "../db/database.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import { readOnPrimary, type ReadOn } from "../db/read-pools.js";
import { readFeed, readFeedBounds, type FeedPage } from "../db/feed-repository.js";
import { comparePositions, encodeCursor, positionBelowHorizon, type FeedPosition } from "../domain/cursor.js";
import { EVERYTHING, matchesFilter } from "./filter.js";
import type { EventFrame, Subscriber } from "./subscription.js";
import { createWakeUps } from "./wake-ups.js";

/** Configures `createTailReader`. */
export interface TailReaderOptions {
  /** The primary's pool: LISTEN runs here (a standby refuses LISTEN). */
  sql: Sql;
  /** Where the feed's reads run (a standby, see src/db/read-pools.ts). Default: `sql`. */
  read?: ReadOn;
  /** Interval of the polling fallback while anyone subscribes, in ms. */
  pollMs: number;
  /** Rows per query. */
  pageSize: number;
  /** LISTEN channel for wake-ups, or null to rely on polling alone. */
  channel: string | null;
  log: Logger;
}

/** Holds the feed's numbers for tests and metrics. */
export interface TailStats {
  subscribers: number;
  attached: number;
  /** Frames queued over all subscribers, and in the fullest queue. */
  queuedFrames: number;
  maxQueuedFrames: number;
  /** Times a full queue detached a subscriber. */
  overflows: number;
  /** Event frames the fan-out has written straight to a waiting stream's sink (the fast path), in all. */
  pushedFrames: number;
  /** Event frames the fan-out has queued for the streams' own loops, in all (`queuedFrames` is what waits now). */
  queuedTotal: number;
  /** True once LISTEN is in place (it stays true while postgres.js reconnects it). */
  hasListened: boolean;
}

/** The replica's shared tail reader (see the module comment for its invariant). */
export interface TailReader {
  /** Reads new rows now, or right after the read in flight; ignored while nobody subscribes. */
  wake(): void;
  /** Returns the tail position, or null before the first read. */
  tail(): FeedPosition | null;
  /** Registers a (detached) subscriber; polling (and LISTEN) run while anyone subscribes. */
  add(sub: Subscriber): void;
  /** Unregisters a subscriber; the last one stops polling. */
  remove(sub: Subscriber): void;
  /** Attaches `sub` to the fan-out if its position equals the tail (see the invariant). */
  tryAttach(sub: Subscriber): boolean;
  /** Returns the numbers in `TailStats`. */
  stats(): TailStats;
  /** Stops polling and LISTEN; streams end through their own signal. */
  close(): void;
}

/** Creates the tail reader; it idles (no queries) while nobody subscribes. */
export function createTailReader(options: TailReaderOptions): TailReader {
  const { sql, pollMs, pageSize, channel, log } = options;
  const read = options.read ?? readOnPrimary(sql);
  const subscribers = new Set<Subscriber>();
  // Every subscriber is in exactly one of these: `detached`, or `attached` under its filter's user (null: any user).
  const detached = new Set<Subscriber>();
  const attached = new Map<string | null, Set<Subscriber>>();
  let tail: FeedPosition | null = null;
  const currentTail = (): FeedPosition => tail!;
  let reading = false;
  let again = false;
  let closed = false;
  let overflows = 0;
  let pushedFrames = 0;
  let queuedTotal = 0;
  const wakeUps = createWakeUps({ sql, pollMs, channel, wake, log });

  function wake(): void {
    if (closed || subscribers.size === 0) return;
    if (reading) again = true;
    else void run();
  }

  async function run(): Promise<void> {
    reading = true;
    try {
      do {
        again = false;
        await readToHead();
      } while (again && !closed && subscribers.size > 0);
    } catch (error) {
      if (isDatabaseUnavailable(error)) {
        log.warn({ err: error }, "feed tail read failed; retrying");
      } else {
        // Detached streams read on their own, so the error reaches them.
        log.error({ err: error }, "feed tail read failed");
        detachAll();
      }
    } finally {
      reading = false;
      if (subscribers.size === 0) tail = null; // a stale tail would make the next subscriber wait for a long read
    }
  }

  async function readToHead(): Promise<void> {
    if (tail === null) {
      tail = positionBelowHorizon((await read(readFeedBounds)).horizon);
      wakeDetached();
      return;
    }
    for (;;) {
      const before: FeedPosition = tail;
      const page = await read((ex) => readFeed(ex, before, EVERYTHING, pageSize));
      const full = page.events.length === pageSize;
      const last = page.events.at(-1)?.position ?? before;
      // After a fallback to another node the horizon may lie behind the tail: the tail never moves back.
      const below = positionBelowHorizon(page.horizon);
      fanOut(before, full || comparePositions(last, below) > 0 ? last : below, page);
      if (!full || closed || subscribers.size === 0) return;
    }
  }

  /** Hands the rows of (before, after] to the attached subscribers that want them, then moves the tail. */
  function fanOut(before: FeedPosition, after: FeedPosition, page: FeedPage): void {
    if (comparePositions(before, page.watermark) < 0) {
      // Rows after `before` may be pruned: attached streams re-read and fail with CURSOR_EXPIRED.
      detachAll();
    } else if (page.events.length > 0) {
      const frames: EventFrame[] = page.events.map((event) => ({ kind: "event", event, cursor: encodeCursor(event.position) }));
      for (const [userId, own] of framesByUser(frames)) {
        for (const sub of attached.get(userId) ?? NO_SUBSCRIBERS) deliver(sub, own);
      }
      for (const sub of attached.get(null) ?? NO_SUBSCRIBERS) deliver(sub, frames);
    }
    tail = after;
    wakeDetached();
  }

  /** Offers `sub` the frames of `pool` that pass its filter; a full queue detaches it. */
  function deliver(sub: Subscriber, pool: EventFrame[]): void {
    const { filter } = sub;
    const narrower = filter.sessionId !== null || filter.types.length > 0 || filter.typePrefixes.length > 0;
    const batch = narrower ? pool.filter((frame) => matchesFilter(filter, frame.event)) : pool;
    if (batch.length === 0) return;
    const before = sub.queued();
    if (sub.offer(batch)) {
      const queued = sub.queued() - before;
      pushedFrames += batch.length - queued;
      queuedTotal += queued;
      // Frames the stream's sink took are sent; only queued ones need the stream to run.
      if (queued > 0) sub.wake();
    } else {
      overflows++;
      detach(sub);
    }
  }

  function detachAll(): void {
    for (const subs of attached.values()) for (const sub of subs) detach(sub);
  }

  function detach(sub: Subscriber): void {
    if (sub.attached) {
      sub.detach(); // before the tail moves: it rewinds to what the stream has yielded
      unindex(sub);
      detached.add(sub);
    }
    sub.wake();
  }

  function unindex(sub: Subscriber): void {
    const subs = attached.get(sub.filter.userId);
    subs?.delete(sub);
    if (subs?.size === 0) attached.delete(sub.filter.userId);
  }

  // Detached streams wait for the tail when they are ahead of it.
  function wakeDetached(): void {
    for (const sub of detached) sub.wake();
  }

  return {
    wake,

    tail: (): FeedPosition | null => tail,

    add(sub: Subscriber): void {
      subscribers.add(sub);
      detached.add(sub);
      wakeUps.start();
      wake();
    },

    remove(sub: Subscriber): void {
      subscribers.delete(sub);
      detached.delete(sub);
      if (sub.attached) {
        sub.detach();
        unindex(sub);
      }
      if (subscribers.size > 0) return;
      wakeUps.stop();
      if (!reading) tail = null;
    },

    tryAttach(sub: Subscriber): boolean {
      if (tail === null || sub.attached || sub.queued() > 0 || comparePositions(sub.position, tail) !== 0) return false;
      sub.attach(currentTail);
      detached.delete(sub);
      const subs = attached.get(sub.filter.userId);
      if (subs) subs.add(sub);
      else attached.set(sub.filter.userId, new Set([sub]));
      return true;
    },

    stats(): TailStats {
      const queues = [...subscribers].map((sub) => sub.queued());
      return {
        subscribers: subscribers.size,
        attached: subscribers.size - detached.size,
        queuedFrames: queues.reduce((sum, n) => sum + n, 0),
        maxQueuedFrames: Math.max(0, ...queues),
        overflows,
        pushedFrames,
        queuedTotal,
        hasListened: wakeUps.hasListened(),
      };
    },

    close(): void {
      closed = true;
      wakeUps.close();
    },
  };
}

const NO_SUBSCRIBERS: ReadonlySet<Subscriber> = new Set();

/** Groups a page's frames by user once, so a stream filtered by user only looks at its own. */
function framesByUser(frames: EventFrame[]): Map<string, EventFrame[]> {
  const byUser = new Map<string, EventFrame[]>();
  for (const frame of frames) {
    const list = byUser.get(frame.event.userId);
    if (list) list.push(frame);
    else byUser.set(frame.event.userId, [frame]);
  }
  return byUser;
}
