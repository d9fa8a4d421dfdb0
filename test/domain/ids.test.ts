import { describe, expect, it } from "vitest";
import { newEventId, newSessionId } from "../../src/domain/ids.js";

describe("ids", () => {
  it("are a prefix plus a ULID, distinct, and spread over every ULID character", () => {
    const ids = Array.from({ length: 5000 }, () => newSessionId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 50)) expect(id).toMatch(/^sess_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(newEventId()).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    // The 16 random characters of 5,000 ids use all 32 symbols, each roughly 1/32 of the time.
    const counts = new Map<string, number>();
    for (const id of ids) for (const char of id.slice(15)) counts.set(char, (counts.get(char) ?? 0) + 1);
    expect(counts.size).toBe(32);
    const expected = (ids.length * 16) / 32;
    for (const count of counts.values()) expect(Math.abs(count - expected) / expected).toBeLessThan(0.15);
  });
});
