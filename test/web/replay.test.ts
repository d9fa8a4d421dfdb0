/** The replay's scheduling (web/lib/replay.ts). */
import { describe, expect, it } from "vitest";
import { SPEEDS, advance, delayToNext, indexAt, replayOffsets, replaySpan, revealTimes } from "../../web/lib/replay.js";

const t0 = Date.parse("2025-03-04T05:06:07.089Z");
/** Events at +0, +1.5 s, +1.5 s, +3 s, +60 s. */
const times = [t0, t0 + 1500, t0 + 1500, t0 + 3000, t0 + 60_000];

describe("replayOffsets", () => {
  it("measures from the first event", () => {
    expect(replayOffsets(times)).toEqual([0, 1500, 1500, 3000, 60_000]);
  });
  it("never goes backwards: an earlier event time waits for the previous event", () => {
    expect(replayOffsets([t0, t0 + 2000, t0 + 500, t0 + 4000])).toEqual([0, 2000, 2000, 4000]);
  });
  it("handles no events, one event and unparsable times", () => {
    expect(replayOffsets([])).toEqual([]);
    expect(replayOffsets([t0])).toEqual([0]);
    expect(replayOffsets([t0, Number.NaN, t0 + 100])).toEqual([0, 0, 100]);
  });
});

describe("revealTimes", () => {
  it.each<[number, number[]]>([
    [1, [0, 1500, 1500, 3000, 60_000]],
    [10, [0, 150, 150, 300, 6000]],
    [60, [0, 25, 25, 50, 1000]],
  ])("at %dx", (speed, expected) => {
    expect(revealTimes(times, speed)).toEqual(expected);
  });
  it("offers 1x, 10x and 60x", () => {
    expect([...SPEEDS]).toEqual([1, 10, 60]);
  });
  it("refuses a speed that is not positive", () => {
    expect(() => revealTimes(times, 0)).toThrow(RangeError);
    expect(() => revealTimes(times, -1)).toThrow(RangeError);
  });
});

describe("indexAt", () => {
  const offsets = replayOffsets(times);
  it.each<[number, number]>([
    [0, 0],
    [1499, 0],
    [1500, 2], // both events at +1.5 s are revealed together
    [2999, 2],
    [3000, 3],
    [59_999, 3],
    [60_000, 4],
    [1e9, 4],
  ])("at %d ms the current event is #%d", (position, index) => {
    expect(indexAt(offsets, position)).toBe(index);
  });
  it("is -1 before the first event and for no events", () => {
    expect(indexAt(offsets, -1)).toBe(-1);
    expect(indexAt([], 0)).toBe(-1);
  });
  it("agrees with the reveal times: at reveal time r the event revealed at r is current", () => {
    for (const speed of SPEEDS) {
      const reveals = revealTimes(times, speed);
      reveals.forEach((r, i) => expect(indexAt(offsets, r * speed)).toBeGreaterThanOrEqual(i));
    }
  });
});

describe("delayToNext, advance, replaySpan", () => {
  const offsets = replayOffsets(times);
  it("waits for the next event at the speed", () => {
    expect(delayToNext(offsets, 0, 0, 1)).toBe(1500);
    expect(delayToNext(offsets, 0, 0, 60)).toBe(25);
    expect(delayToNext(offsets, 0, 1000, 10)).toBe(50);
    expect(delayToNext(offsets, 2, 1500, 60)).toBe(25);
    expect(delayToNext(offsets, 4, 60_000, 60)).toBeNull();
  });
  it("advances the recorded position by wall time times speed, up to the span", () => {
    expect(advance(offsets, 0, 100, 60)).toBe(6000);
    expect(advance(offsets, 59_000, 100, 60)).toBe(60_000);
    expect(advance(offsets, 10, -5, 10)).toBe(10);
    expect(replaySpan(offsets)).toBe(60_000);
    expect(replaySpan([])).toBe(0);
  });
});
