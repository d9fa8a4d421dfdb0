/**
 * Replay of a timeline at a multiple of its recorded pace. Pure (no DOM, no
 * timers): the page keeps a replay clock in recorded milliseconds since the
 * first event and asks these functions which event is current and when the
 * next one is due.
 *
 * The pace is the events' `event_time` (when the caller says it happened;
 * the same time the timeline shows and its offsets use). Writers report
 * event times, so they may go backwards: an event is never revealed before
 * the one ahead of it in seq order (its offset is the running maximum).
 */

/** The speeds the console offers: times the recorded pace. */
export const SPEEDS = [1, 10, 60] as const;
export type Speed = (typeof SPEEDS)[number];

/**
 * Each event's offset from the first in recorded ms, never decreasing (an
 * event time earlier than a previous one counts as that one's), and 0 for
 * unparsable times (NaN) after none.
 */
export function replayOffsets(times: readonly number[]): number[] {
  const first = times.find((t) => Number.isFinite(t));
  let latest = 0;
  return times.map((t) => {
    if (first !== undefined && Number.isFinite(t)) latest = Math.max(latest, t - first);
    return latest;
  });
}

/** When each event is revealed, in wall-clock ms after playing from the start at `speed`. */
export function revealTimes(times: readonly number[], speed: number): number[] {
  if (!(speed > 0)) throw new RangeError(`speed must be positive, got ${speed}`);
  return replayOffsets(times).map((offset) => offset / speed);
}

/** The recorded length of the replay: the last event's offset (0 with fewer than two events). */
export function replaySpan(offsets: readonly number[]): number {
  return offsets.at(-1) ?? 0;
}

/**
 * The current event at recorded time `position`: the last event whose
 * offset is at most `position` (binary search; -1 before the first, which
 * cannot happen for `position` >= 0 since the first offset is 0).
 */
export function indexAt(offsets: readonly number[], position: number): number {
  let lo = 0;
  let hi = offsets.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (offsets[mid]! <= position) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/**
 * Wall-clock ms until the event after `index` is due while playing at
 * `speed` from recorded time `position`, or null at the last event.
 */
export function delayToNext(offsets: readonly number[], index: number, position: number, speed: number): number | null {
  const next = offsets[index + 1];
  if (next === undefined) return null;
  return Math.max(0, (next - position) / speed);
}

/** The recorded position after `wallMs` of playing at `speed` from `position`, capped at the span. */
export function advance(offsets: readonly number[], position: number, wallMs: number, speed: number): number {
  return Math.min(replaySpan(offsets), position + Math.max(0, wallMs) * speed);
}
