/**
 * The push protocol between a stream and its consumer, the fast path of
 * WatchSessionEvents: while a stream waits at the tail, the fan-out writes
 * its frames straight to the consumer (the grpc-js adapter's call) instead
 * of waking the stream's generator, which would send each frame through
 * every async level between the feed and the socket (src/feed/watch.ts).
 * Anything that only pulls (connect-node, tests) never calls `pushTo` and
 * sees the same frames through `next()`.
 */

/**
 * Where a `PushSource` writes: `ready()` tells whether it takes a message
 * now (false: the stream keeps the message for `next()`), `write` takes it.
 */
export interface Sink<T> {
  ready(): boolean;
  write(value: T): void;
}

/**
 * A stream (an async iterator) that can also write messages to `sink`.
 * It writes only while a `next()` of its consumer is pending and nothing
 * else is in flight, so pushed and pulled messages stay in order.
 */
export interface PushSource<T> {
  pushTo(sink: Sink<T>): void;
}

/** Tells whether an iterator is a `PushSource`. */
export function isPushSource<T>(iterator: object): iterator is PushSource<T> {
  return typeof (iterator as Partial<PushSource<T>>).pushTo === "function";
}
