/**
 * A WatchSessionEvents subscriber that moves between replicas: it keeps the
 * last cursor it received (from any frame) and, whenever its stream ends
 * (cancelled on purpose, or failed because a replica or the database went
 * away), resumes with that cursor on another live replica.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { createBackoff, type Backoff } from "../../src/client/retry.js";
import { waitFor } from "../support/wait.js";
import type { Replica } from "./replica-process.js";

/** Names a subscriber's filters, as in WatchSessionEventsRequest. */
export interface FeedFilter {
  userId: string;
  types: string[];
}

/** Holds one delivered event. */
export interface Delivery {
  eventId: string;
  cursor: string;
  /** The stream (1-based segment number) that delivered it. */
  segment: number;
}

/** Records one thing that happened on a subscriber's streams, for diagnosing a failed check. */
export interface JournalEntry {
  kind: "open" | "event" | "caughtUp" | "heartbeat" | "end" | "error" | "cancel";
  segment: number;
  /** The cursor the frame carried, or the resume cursor for "open". */
  cursor: string;
  /** The replica for "open", the code for "error", the event id for "event". */
  detail: string;
}

/** Holds a subscriber's state and what it received. */
export interface Subscriber {
  name: string;
  filter: FeedFilter;
  /** Where it started: "" for from_beginning, or a cursor. */
  startCursor: string;
  /** The last cursor received from any frame. */
  cursor: string;
  deliveries: Delivery[];
  /** Streams opened (1 + resumes). */
  segments: number;
  /** Stream failures by code (not counting deliberate cancels). */
  errors: Record<string, number>;
  /** Every frame, open, end and error, in order. */
  journal: JournalEntry[];
}

/** Configures `runSubscriber`. */
export interface SubscriberOptions {
  /** Returns the replicas that are alive now. */
  replicas: () => Replica[];
  /** Ends the subscriber. */
  signal: AbortSignal;
  /** When set, each stream is cancelled after a random time in this range (ms) and resumed elsewhere. */
  churnMs?: [number, number];
  /** Uses the gRPC client instead of Connect. */
  grpc: boolean;
  /** Spreads subscribers over the replicas: the first stream goes to replica `offset % n`. */
  offset: number;
}

/** Creates a subscriber that starts at `startCursor` ("" means from the beginning). */
export function createSubscriber(name: string, filter: FeedFilter, startCursor: string): Subscriber {
  return { name, filter, startCursor, cursor: startCursor, deliveries: [], segments: 0, errors: {}, journal: [] };
}

/**
 * Streams into `subscriber` until `options.signal` aborts, resuming on another
 * replica after every end, and after a failure with the CLI's reconnect backoff.
 *
 * @throws Error when no replica is alive for a minute.
 */
export async function runSubscriber(subscriber: Subscriber, options: SubscriberOptions): Promise<void> {
  const backoff = createBackoff({ initialMs: 30, maxMs: 500 });
  let previous: Replica | null = null;
  while (!options.signal.aborted) {
    const replica = pickReplica(options.replicas(), previous, options.offset + subscriber.segments);
    if (replica === null) {
      await waitFor(() => options.signal.aborted || options.replicas().length > 0, {
        timeoutMs: 60_000,
        intervalMs: 20,
        message: `a live replica for subscriber ${subscriber.name}`,
      });
      continue;
    }
    previous = replica;
    subscriber.segments += 1;
    await streamOnce(subscriber, replica, options, backoff);
  }
}

function pickReplica(alive: Replica[], previous: Replica | null, turn: number): Replica | null {
  const others = alive.filter((replica) => replica !== previous);
  const choices = others.length > 0 ? others : alive;
  return choices.length === 0 ? null : choices[turn % choices.length]!;
}

async function streamOnce(subscriber: Subscriber, replica: Replica, options: SubscriberOptions, backoff: Backoff): Promise<void> {
  const segment = new AbortController();
  const timer = options.churnMs ? setTimeout(() => segment.abort(), randomBetween(options.churnMs)) : undefined;
  const signal = AbortSignal.any([segment.signal, options.signal]);
  const client = options.grpc ? replica.grpc : replica.connect;
  const note = (kind: JournalEntry["kind"], cursor: string, detail: string) =>
    subscriber.journal.push({ kind, segment: subscriber.segments, cursor, detail });
  try {
    const request = {
      userId: subscriber.filter.userId,
      types: subscriber.filter.types,
      afterCursor: subscriber.cursor,
      fromBeginning: subscriber.cursor === "",
    };
    note("open", subscriber.cursor, replica.name);
    for await (const response of client.watchSessionEvents(request, { signal })) {
      const frame = response.frame;
      if (frame.case === undefined) continue;
      if (frame.case === "event") {
        subscriber.deliveries.push({ eventId: frame.value.eventId, cursor: frame.value.cursor, segment: subscriber.segments });
      }
      note(frame.case, frame.value.cursor, frame.case === "event" ? frame.value.eventId : "");
      subscriber.cursor = frame.value.cursor;
      backoff.reset();
    }
    note("end", "", "");
  } catch (error) {
    if (signal.aborted) {
      note("cancel", "", "");
    } else {
      const code = Code[ConnectError.from(error).code];
      subscriber.errors[code] = (subscriber.errors[code] ?? 0) + 1;
      note("error", "", code);
      await backoff.wait(options.signal);
    }
  } finally {
    clearTimeout(timer);
  }
}

function randomBetween([min, max]: [number, number]): number {
  return min + Math.random() * (max - min);
}
