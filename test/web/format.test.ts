/** The console's display helpers (web/lib/format.ts, web/lib/events.ts). */
import { describe, expect, it } from "vitest";
import { mergeEvents, isLifecycle } from "../../web/lib/events.js";
import { formatDuration, jwtSubject, layoutAxis, normalizeToken, parseListQuery, seqOfHash, sessionDuration } from "../../web/lib/format.js";
import { asReceived, storedSession } from "./fixtures.js";

describe("formatDuration", () => {
  it.each<[number, string]>([
    [0, "0 ms"],
    [850, "850 ms"],
    [4_249, "4.2 s"],
    [59_999, "59 s"],
    [60_000, "1 min 00 s"],
    [185_000, "3 min 05 s"],
    [3_600_000, "1 h 00 min"],
    [7_380_000, "2 h 03 min"],
    [100_800_000, "1 d 4 h"],
    [-1500, "-1.5 s"],
  ])("%d ms is %s", (ms, text) => expect(formatDuration(ms)).toBe(text));
});

describe("layoutAxis", () => {
  it("gives offsets from the first event and marks long gaps only", () => {
    const t0 = 1_700_000_000_000;
    expect(layoutAxis([t0, t0 + 500, t0 + 500 + 125_000, t0 + 126_000, t0 + 120_000])).toEqual([
      { offset: "+0 ms", gapBefore: null },
      { offset: "+500 ms", gapBefore: null },
      { offset: "+2 min 05 s", gapBefore: "2 min 05 s" },
      { offset: "+2 min 06 s", gapBefore: null },
      { offset: "+2 min 00 s", gapBefore: null },
    ]);
    expect(layoutAxis([t0, t0 - 2000])[1]).toEqual({ offset: "-2.0 s", gapBefore: null });
    expect(layoutAxis([])).toEqual([]);
    expect(layoutAxis([t0, t0 + 10_000], 5_000)[1]!.gapBefore).toBe("10 s");
  });
});

describe("sessionDuration", () => {
  it("runs to the end, or to now while open", () => {
    expect(sessionDuration(1000, 4000, 99_999)).toBe("3.0 s");
    expect(sessionDuration(1000, null, 61_000)).toBe("1 min 00 s");
    expect(sessionDuration(null, null, 5)).toBe("");
  });
});

describe("credentials", () => {
  it("reads a JWT's sub and nothing from an API key", () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    expect(jwtSubject(`${b64({ alg: "ES256" })}.${b64({ sub: "user-ü-42", exp: 1 })}.sig`)).toBe("user-ü-42");
    expect(jwtSubject("smk_01ARZ3NDEKTSV4RRFFQ69G5FAV_abc")).toBeNull();
    expect(jwtSubject("a.%%%.c")).toBeNull();
    expect(normalizeToken("  Bearer smk_x \n")).toBe("smk_x");
  });
});

describe("routing helpers", () => {
  it("parses filters and event fragments", () => {
    expect(parseListQuery("?user=u1&state=paused&size=2")).toEqual({ userId: "u1", state: "paused", pageSize: 2 });
    expect(parseListQuery("")).toEqual({ userId: "", state: "", pageSize: 50 });
    expect(parseListQuery("?size=0").pageSize).toBe(50);
    expect(parseListQuery("?size=1001").pageSize).toBe(50);
    expect(parseListQuery("?size=2.5").pageSize).toBe(50);
    expect(seqOfHash("#seq-12")).toBe(12);
    expect(seqOfHash("#seq-x")).toBeNull();
  });
});

describe("mergeEvents", () => {
  it("adds live events once, in seq order", () => {
    const all = asReceived(storedSession([{}, { a: 1 }, { b: 2 }]));
    expect(mergeEvents(all.slice(0, 2), [all[2]!, all[1]!]).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(isLifecycle("session.updated")).toBe(true);
    expect(isLifecycle("care.session.x")).toBe(false);
  });
});
