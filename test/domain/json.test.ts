import { describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import { canonicalJson, checkJsonObject, isReadableJson, jcs, jsonDepth, MAX_JSON_DEPTH, type JsonObject, type JsonValue } from "../../src/domain/json.js";

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

describe("jcs (RFC 8785)", () => {
  it("sorts keys by UTF-16 code units: the RFC's own example (section 3.2.3)", () => {
    const input = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    const order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"];
    expect(jcs(input)).toBe(`{${order.map((k) => `${JSON.stringify(k)}:${JSON.stringify(input[k as keyof typeof input])}`).join(",")}}`);
  });

  it("sorts array-index keys as strings, where JavaScript's own order (canonicalJson) puts them first by number", () => {
    const value = { b: 4, "9": 1, "-a": 3, "10": 2, "1.5": 5 };
    expect(jcs(value)).toBe('{"-a":3,"1.5":5,"10":2,"9":1,"b":4}');
    expect(canonicalJson(value)).toBe('{"9":1,"10":2,"-a":3,"1.5":5,"b":4}');
  });

  it("writes numbers, strings and nesting as JSON.stringify does, without whitespace", () => {
    const value = { z: [1e-6, 1e20, -0, 0.1, 3, true, null, "é\u2028\n\"x\""], a: { d: [{ y: 1, x: 2 }], c: {} } };
    expect(jcs(value)).toBe('{"a":{"c":{},"d":[{"x":2,"y":1}]},"z":[0.000001,100000000000000000000,0,0.1,3,true,null,"é\u2028\\n\\"x\\""]}');
    expect(JSON.parse(jcs(value))).toEqual(JSON.parse(JSON.stringify(value)));
  });
});

describe("jsonDepth and the nesting limit", () => {
  it("counts objects and arrays one level each, scalars none", () => {
    expect(jsonDepth(1)).toBe(0);
    expect(jsonDepth({})).toBe(1);
    expect(jsonDepth({ a: [1] })).toBe(2);
    expect(jsonDepth({ a: [1], b: { c: { d: [] } } })).toBe(4);
  });

  it("stops counting past the limit, so a hostile value costs no more than the limit", () => {
    let value: JsonValue = 1;
    for (let i = 0; i < 100_000; i++) value = [value];
    expect(jsonDepth(value, 5)).toBe(7);
    expect(isReadableJson({ v: value })).toBe(false);
  });

  it("refuses one level past MAX_JSON_DEPTH with INVALID_REQUEST naming the field", () => {
    let value: JsonValue = {};
    for (let i = 1; i < MAX_JSON_DEPTH; i++) value = { v: value };
    expect(() => checkJsonObject("payload", value as JsonObject, 1 << 20)).not.toThrow();
    const error = (() => {
      try {
        checkJsonObject("payload", { v: value }, 1 << 20);
      } catch (e) {
        return e as DomainError;
      }
    })();
    expect(error?.reason).toBe("INVALID_REQUEST");
    expect(error?.metadata).toEqual({ field: "payload" });
  });
});
