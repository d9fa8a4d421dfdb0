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
  return {
    [Symbol.asyncIterator](): AsyncIterator<U> & PushSource<U> {
      let source: AsyncIterator<T> | null = null;
      let sink: Sink<T> | null = null;
      let settled = false;
      const end = () => {
        if (settled) return;
        settled = true;
        hooks.end();
      };
      const onResult = (result: IteratorResult<T>): IteratorResult<U> => {
        if (result.done !== true) return { done: false, value: hooks.map(result.value) };
        end();
        return { done: true, value: undefined };
      };
      const onError = async (error: unknown): Promise<never> => {
        if (settled) throw error;
        settled = true;
        throw await hooks.fail(error);
      };
      return {
        next() {
          if (source === null) {
            try {
              source = open()[Symbol.asyncIterator]();
            } catch (error) {
              return onError(error);
            }
            if (sink !== null && isPushSource<T>(source)) source.pushTo(sink);
          }
          return source.next().then(onResult, onError);
        },
        pushTo(next) {
          sink = { ready: () => next.ready(), write: (value) => next.write(hooks.map(value)) };
          if (source !== null && isPushSource<T>(source)) source.pushTo(sink);
        },
        async return() {
          await source?.return?.();
          try {
            end();
          } catch {
            // The consumer stopped reading: there is nobody to give the error to.
          }
          return { done: true, value: undefined };
        },
      };
    },
  };
}
