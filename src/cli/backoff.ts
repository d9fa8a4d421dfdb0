/**
 * Exponential backoff with jitter for reconnect loops: each wait doubles up
 * to a ceiling and is drawn between half and all of the current step, so
 * many clients that lost the same replica do not reconnect in lockstep.
 */
import { setTimeout as sleep } from "node:timers/promises";

/** Configures `createBackoff`. */
export interface BackoffOptions {
  /** First step, in ms. */
  initialMs: number;
  /** Largest step, in ms. */
  maxMs: number;
}

/** A reconnect schedule with state (the current step): one per reconnect loop. */
export interface Backoff {
  /** Waits the next step (or until `signal` aborts), then doubles the step. */
  wait(signal: AbortSignal): Promise<void>;
  /** Starts over at the first step (after a success). */
  reset(): void;
}

/** Creates a schedule starting at `initialMs`; each wait lasts from half to all of the current step. */
export function createBackoff(options: BackoffOptions): Backoff {
  let step = options.initialMs;
  return {
    async wait(signal) {
      const ms = step / 2 + Math.random() * (step / 2);
      step = Math.min(step * 2, options.maxMs);
      try {
        await sleep(ms, undefined, { signal });
      } catch {
        // Aborted: the caller checks the signal.
      }
    },
    reset() {
      step = options.initialMs;
    },
  };
}
