/**
 * Waiting in tests. Wait for the condition you need with `waitFor`; a fixed
 * delay is either too short on a loaded machine (a flaky failure) or too long
 * everywhere (a slow suite), and it can let a test pass for the wrong reason.
 */
import { setTimeout as delay } from "node:timers/promises";

/** Configures `waitFor`. */
export interface WaitForOptions {
  /** Gives up after this many ms. Default 15_000. */
  timeoutMs?: number;
  /** Time between two checks, in ms. Default 10. */
  intervalMs?: number;
  /**
   * Names what is awaited, for the timeout error. A function is called only
   * on timeout, so it can describe the state at that moment. Default "a condition".
   */
  message?: string | (() => string);
}

/**
 * Checks `predicate` until it returns a truthy value, then resolves with that
 * value. The predicate runs once more at the deadline before the wait fails.
 * A predicate that throws fails the wait at once: an error (a stream that
 * died, a process that exited) is not "not yet".
 *
 * @throws Error "timed out after <timeoutMs> ms waiting for <message>".
 */
export async function waitFor<T>(predicate: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Exclude<T, false | null | undefined | 0 | "">> {
  const { timeoutMs = 15_000, intervalMs = 10, message = "a condition" } = options;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value as Exclude<T, false | null | undefined | 0 | "">;
    if (performance.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof message === "function" ? message() : message}`);
    }
    await delay(Math.min(intervalMs, Math.max(0, deadline - performance.now())));
  }
}

/**
 * Lets `ms` of real time pass. Use it ONLY to prove that something does NOT
 * happen within a bound: nothing is delivered while a transaction is open, no
 * replica crashes while the database is down for a second, no invariant breaks
 * while a randomized workload is spread over real time (heartbeats landing
 * around a deadline). Say in a comment what must not happen. Never use it to
 * wait for something to happen: that is `waitFor`.
 */
export function sleep(ms: number): Promise<void> {
  return delay(ms);
}
