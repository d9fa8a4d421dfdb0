import { describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import { canonicalJson, checkJsonObject } from "../../src/domain/json.js";

function reasonOf(run: () => void): string | null {
  try {
    run();
    return null;
  } catch (error) {
    return error instanceof DomainError ? error.reason : "other";
  }
}

describe("checkJsonObject", () => {
  it("accepts JSON that jsonb stores unchanged, up to the byte limit", () => {
    const value = { a: "é".repeat(10), b: [1, 2.5, null, true, 0, -1e-6, 9.99e20], c: { d: "" } };
    const bytes = Buffer.byteLength(JSON.stringify(value));
    expect(reasonOf(() => checkJsonObject("payload", value, bytes))).toBeNull();
    expect(reasonOf(() => checkJsonObject("payload", value, bytes - 1))).toBe("INVALID_REQUEST");
  });

  it.each([
    ["NUL in a string", { a: ["x\u0000"] }],
    ["NUL in a key", { "\u0000": 1 }],
    ["an unpaired surrogate in a string", { a: "x\ud800" }],
    ["an unpaired surrogate in a key", { "\udc00": true }],
    ["NaN", { a: Number.NaN }],
    ["Infinity", { a: { b: Number.POSITIVE_INFINITY } }],
    ["1e308 (jsonb would print 309 digits)", { a: [1e308] }],
    ["1e-300", { a: 1e-300 }],
  ])("rejects %s", (_name, value) => {
    expect(reasonOf(() => checkJsonObject("payload", value as never, 1_000))).toBe("INVALID_REQUEST");
  });
});

describe("canonicalJson", () => {
  it("gives equal text for objects that differ only in key order", () => {
    expect(canonicalJson({ b: 1, a: { d: [{ y: 1, x: 2 }], c: 3 } })).toBe(canonicalJson({ a: { c: 3, d: [{ x: 2, y: 1 }] }, b: 1 }));
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }));
  });
});
