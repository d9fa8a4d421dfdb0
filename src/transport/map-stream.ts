/**
 * A pass-through for response streams: maps each message and reports the
 * stream's end and failure. An iterator, not an async generator: each async
 * generator level costs several promise turns per message, and the feed
 * sends one message per open stream per event fanned out (bench:watch: with
 * 10,000 streams, the generator levels between the feed and the socket were
 * most of a replica's CPU).
 */
import { isPushSource, type PushSource, type Sink } from "../feed/push.js";

/** What `mapStream` calls. */
export interface StreamHooks<T, U> {
  /** Turns each message into the one passed on. */
  map(value: T): U;
  /**
   * The source ended, or its consumer stopped reading (`return`): called
   * once. It may throw to end the stream with that error instead.
   */
  end(): void;
  /** The source failed: returns the error to pass on (called once, instead of `end`). */
  fail(error: unknown): unknown;
}

/**
 * Returns the messages of the stream that `open` creates, mapped by
 * `hooks.map`. `open` runs at the first `next()`, so an error it throws
 * fails the stream like an error of the source (as in an async generator's
 * body), and nothing is opened for a stream nobody reads. The iterator is
 * a `PushSource` whose pushes go through `hooks.map` too, forwarded to the
 * source when the source is one.
 */
export function mapStream<T, U>(open: () => AsyncIterable<T>, hooks: StreamHooks<T, U>): AsyncIterable<U> {
  return new MappedStream(open, hooks);
}

/**
 * The iterator of `mapStream`, its own iterable (a response stream is read
 * once), and the sink it gives its source. A class whose methods hold no
 * closures: every open WatchSessionEvents stream holds two of these for
 * as long as it is open.
 */
class MappedStream<T, U> implements AsyncIterableIterator<U>, PushSource<U>, Sink<T> {
  private source: AsyncIterator<T> | null = null;
  private consumer: Sink<U> | null = null;
  private settled = false;

  constructor(
    private readonly open: () => AsyncIterable<T>,
    private readonly hooks: StreamHooks<T, U>,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<U>> {
    let result: IteratorResult<T>;
    try {
      if (this.source === null) {
        this.source = this.open()[Symbol.asyncIterator]();
        if (this.consumer !== null && isPushSource<T>(this.source)) this.source.pushTo(this);
      }
      result = await this.source.next();
    } catch (error) {
      if (this.settled) throw error;
      this.settled = true;
      throw await this.hooks.fail(error);
    }
    if (result.done !== true) return { done: false, value: this.hooks.map(result.value) };
    this.end();
    return { done: true, value: undefined };
  }

  async return(): Promise<IteratorResult<U>> {
    await this.source?.return?.();
    try {
      this.end();
    } catch {
      // The consumer stopped reading: there is nobody to give the error to.
    }
    return { done: true, value: undefined };
  }

  pushTo(consumer: Sink<U>): void {
    this.consumer = consumer;
    if (this.source !== null && isPushSource<T>(this.source)) this.source.pushTo(this);
  }

  /** Sink of the source: ready when the consumer is. */
  ready(): boolean {
    return this.consumer !== null && this.consumer.ready();
  }

  /** Sink of the source: maps a pushed message and passes it on. */
  write(value: T): void {
    this.consumer!.write(this.hooks.map(value));
  }

  private end(): void {
    if (this.settled) return;
    this.settled = true;
    this.hooks.end();
  }
}
