/**
 * A timer for a point in time however far away: setTimeout takes at most
 * 2^31 - 1 ms (24.8 days) and fires at once past that, so a later time is
 * reached in steps of that size. Credentials' expiry (src/auth/guard.ts) and
 * gRPC deadlines (src/transport/grpc-js-adapter.ts) use it; a JWT or a
 * grpc-timeout may well be months away.
 */

/** The longest delay setTimeout takes (2^31 - 1 ms, 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Runs `fire` once at `atMs` (ms since the epoch; at once if that has passed) unless cancelled first. */
export class TimerAt {
  #timer: NodeJS.Timeout;

  constructor(
    private readonly atMs: number,
    private readonly fire: () => void,
  ) {
    this.#timer = this.#arm();
  }

  #arm(): NodeJS.Timeout {
    const leftMs = this.atMs - Date.now();
    if (leftMs > MAX_TIMER_MS) return setTimeout(() => (this.#timer = this.#arm()), MAX_TIMER_MS);
    return setTimeout(this.fire, Math.max(0, leftMs));
  }

  cancel(): void {
    clearTimeout(this.#timer);
  }
}
