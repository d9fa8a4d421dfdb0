/**
 * When and how the client retries. Unary calls retry only what cannot have
 * been refused by the service: UNAVAILABLE (the replica is stopping, or
 * PostgreSQL is unreachable: "retry with the same record_id", README
 * "Errors"), DEADLINE_EXCEEDED and a connection that failed (refused, reset,
 * closed before the response). Every other code is the service's answer and
 * is final. A mutating call keeps its record_id across attempts, so a retry
 * of a call that did commit returns the original result (AIP-155).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { SessionManagerError } from "./errors.js";

/** Configures retries of unary calls. */
export interface RetryOptions {
  /** Attempts in total, the first included; 1 turns retries off. Default 5. */
  maxAttempts?: number;
  /** The first backoff step, in ms. Default 100. */
  initialDelayMs?: number;
  /** The largest backoff step, in ms. Default 5_000. */
  maxDelayMs?: number;
  /** Each attempt's deadline, in ms (a timed-out attempt is DEADLINE_EXCEEDED and retried); 0 for none. Default 10_000. */
  attemptTimeoutMs?: number;
}

/** `RetryOptions` with every default applied. */
export type RetryPolicy = Required<RetryOptions>;

/** Applies the defaults of `RetryOptions`. */
export function retryPolicy(options: RetryOptions = {}): RetryPolicy {
  const policy = { maxAttempts: 5, initialDelayMs: 100, maxDelayMs: 5_000, attemptTimeoutMs: 10_000, ...options };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${policy.maxAttempts}`);
  return policy;
}

/**
 * Node (and undici, and HTTP/2) error codes of a connection that failed or
 * went away; connect-node reports them as INTERNAL, ABORTED or UNAVAILABLE
 * with the Node error in `cause`.
 */
const CONNECTION_ERROR_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_PING_CANCEL",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
]);

/**
 * The message connect-node gives a stream that its HTTP/2 connection reset
 * or dropped (Node resets the open streams of a closed session with CANCEL,
 * which connect-node reports as CANCELED although the caller canceled
 * nothing; a caller's abort is checked before this, see `withRetries`).
 */
const H2_RESET = /^http\/2 stream closed with error code (CANCEL|INTERNAL_ERROR|PROTOCOL_ERROR|CONNECT_ERROR) /;

/**
 * Tells whether `error` is a connection that failed or went away rather than
 * an answer: a Node error code of CONNECTION_ERROR_CODES anywhere in the
 * `cause` chain, Node's "socket hang up", an HTTP/2 stream reset by a lost
 * connection (H2_RESET), or a `TypeError` from `fetch` (how browsers report
 * a network failure).
 */
export function isConnectionError(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error instanceof SessionManagerError ? error.cause : error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && CONNECTION_ERROR_CODES.has(code)) return true;
    if (current.message.includes("socket hang up")) return true;
    if (current instanceof ConnectError && H2_RESET.test(current.rawMessage)) return true;
    if (current instanceof TypeError && /fetch|network/i.test(current.message)) return true;
    current = current.cause;
  }
  return false;
}

/** Tells whether a unary call that failed with `error` may be sent again (see the module comment). */
export function isRetryable(error: unknown): boolean {
  const code = error instanceof SessionManagerError ? error.code : ConnectError.from(error).code;
  return code === Code.Unavailable || code === Code.DeadlineExceeded || isConnectionError(error);
}

/** The n-th backoff delay (n from 1): a step doubling from `initialDelayMs` up to `maxDelayMs`, drawn between half and all of it (jitter). */
export function backoffDelay(attempt: number, initialDelayMs: number, maxDelayMs: number): number {
  const step = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.max(0, attempt - 1));
  return step / 2 + Math.random() * (step / 2);
}

/** Waits `ms`, or less if `signal` aborts (then resolves without throwing). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  // Plain timers rather than node:timers/promises: this module also runs in browsers.
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A reconnect schedule with state (how many waits so far): one per reconnect loop. */
export interface Backoff {
  /** Waits the next `backoffDelay` (or less if `signal` aborts). */
  wait(signal?: AbortSignal): Promise<void>;
  /** Starts over at the first step (after a success). */
  reset(): void;
}

/** Creates a schedule whose steps double from `initialMs` up to `maxMs`, with `backoffDelay`'s jitter. */
export function createBackoff({ initialMs, maxMs }: { initialMs: number; maxMs: number }): Backoff {
  let waits = 0;
  return {
    wait: (signal) => pause(backoffDelay(++waits, initialMs, maxMs), signal),
    reset() {
      waits = 0;
    },
  };
}

/**
 * Runs `attempt` until it succeeds, fails with an error that is not
 * retryable, `policy.maxAttempts` are spent, or `signal` aborts; throws the
 * last error as a SessionManagerError. `onRetry` sees each error that is
 * retried and the delay before the next attempt.
 */
export async function withRetries<T>(
  attempt: (n: number) => Promise<T>,
  policy: RetryPolicy,
  signal?: AbortSignal,
  onRetry?: (error: SessionManagerError, attempt: number, delayMs: number) => void,
): Promise<T> {
  for (let n = 1; ; n += 1) {
    try {
      return await attempt(n);
    } catch (thrown) {
      const error = SessionManagerError.from(thrown);
      if (n >= policy.maxAttempts || isAborted(signal) || !isRetryable(error)) throw error;
      const delayMs = backoffDelay(n, policy.initialDelayMs, policy.maxDelayMs);
      onRetry?.(error, n, delayMs);
      await pause(delayMs, signal);
      if (isAborted(signal)) throw error;
    }
  }
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}
