/**
 * The replica's load signal for admission control: the event loop's delay.
 * Every unary call, every stream's frames and every database result wait in
 * the one event loop, so its delay is what a caller feels first when a
 * replica takes on more than it can serve. Admission (src/auth/guard.ts)
 * refuses NEW WatchSessionEvents streams while the delay is high, so that
 * watching cannot starve writes; writes are never refused for it.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

/** Configures `createLoadMonitor`. */
export interface LoadMonitorOptions {
  /** The p99 event-loop delay, in ms, above which the replica counts as overloaded (WATCH_ADMISSION_DELAY_MS). */
  maxDelayMs: number;
  /** The window the p99 is taken over, in ms. Default 1,000. */
  windowMs?: number;
}

/** Reports whether the replica is overloaded, as of the last full window. */
export interface LoadMonitor {
  /** The p99 delay of the last full window, in ms, when it exceeded the limit; null otherwise. */
  overloadedDelayMs(): number | null;
  /** Stops sampling. */
  close(): void;
}

/** Starts sampling the event-loop delay (10 ms resolution; the timers are unref'd). */
export function createLoadMonitor({ maxDelayMs, windowMs = 1_000 }: LoadMonitorOptions): LoadMonitor {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let lastP99Ms = 0;
  const timer = setInterval(() => {
    // A loop blocked for longer than the window shows up here, late, with the whole block recorded.
    lastP99Ms = histogram.count === 0 ? 0 : histogram.percentile(99) / 1e6;
    histogram.reset();
  }, windowMs);
  timer.unref();
  return {
    overloadedDelayMs: () => (lastP99Ms > maxDelayMs ? Math.round(lastP99Ms) : null),
    close() {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
