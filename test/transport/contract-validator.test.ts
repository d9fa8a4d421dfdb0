/**
 * The contract validator's regex matcher (src/transport/contract-validator.ts)
 * gives RE2's answer for every pattern of the contract, on inputs built to
 * find where RegExp and RE2 differ (newlines, surrogate pairs, non-ASCII,
 * case, lengths around the bounds); patterns outside the simple shape go to
 * RE2; and the validator still rejects what the contract rejects.
 */
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { RE2JS } from "@bufbuild/re2";
import { describe, expect, it } from "vitest";
import { GetSessionRequestSchema } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { createContractValidator, matchContractPattern, runsNatively } from "../../src/transport/contract-validator.js";

/** Every pattern in the contract's protos. */
const patterns = [
  ...new Set(
    [...readFileSync(new URL("../../proto/sessionmanager/v1/session_manager_service.proto", import.meta.url), "utf8").matchAll(/pattern(?:\s*=|:)\s*"((?:[^"\\]|\\.)*)"/g)].map(
      (m) => m[1]!.replace(/\\\\/g, "\\"),
    ),
  ),
];

const pieces = [".*", "*", "a", "Z", "0", "9", "_", ".", ":", "-", "sess_", " ", "\n", "\r", "\u2028", "é", "ß", "K", "\u212A", "😀", "\uD83D", "\\", "$", "^", ""];
const ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

/** Inputs: every piece alone and in pairs, a valid id, and ids with one character changed, added or dropped. */
function inputs(): string[] {
  const out = new Set<string>(pieces);
  for (const a of pieces) for (const b of pieces) out.add(a + b);
  for (const id of [`sess_${ulid}`, "worker-1.a:b_c"]) {
    out.add(id);
    out.add(`${id}\n`);
    out.add(id.slice(1));
    out.add(id.slice(0, -1));
    out.add(id.toLowerCase());
    for (const p of pieces) {
      out.add(id + p);
      out.add(p + id);
      out.add(id.slice(0, 10) + p + id.slice(11));
    }
  }
  return [...out];
}

describe("the contract's regex matcher", () => {
  it("finds patterns in the contract, all of the simple shape", () => {
    expect(patterns.length).toBeGreaterThanOrEqual(3);
    expect(patterns.filter((p) => !runsNatively(p))).toEqual([]);
  });

  it("answers as RE2 does for every contract pattern and input", () => {
    const all = inputs();
    for (const pattern of patterns) {
      const re2 = RE2JS.compile(pattern);
      const differing = all.filter((input) => matchContractPattern(pattern, input) !== re2.test(input));
      expect({ pattern, differing }).toEqual({ pattern, differing: [] });
    }
  });

  it("leaves every other shape to RE2", () => {
    for (const pattern of ["^(a+)+$", "^a|b$", "^.+$", "^\\d+$", "^[^a]+$", "^[a-z]+[0-9]*$", "a+", "^a+", "^é+$", "^[a\\]]+$", "(?i)^a$"]) {
      expect({ pattern, native: runsNatively(pattern) }).toEqual({ pattern, native: false });
    }
    // RE2 semantics where RegExp's differ: `.` does not match \r in RegExp, does in RE2.
    expect(matchContractPattern("^a.b$", "a\rb")).toBe(RE2JS.compile("^a.b$").test("a\rb"));
    expect(() => matchContractPattern("^(?<n>a)\\k<n>$", "aa")).toThrow();
  });

  it("still makes the validator reject a malformed session_id and accept a valid one", () => {
    const validator = createContractValidator();
    expect(validator.validate(GetSessionRequestSchema, create(GetSessionRequestSchema, { sessionId: `sess_${ulid}` })).kind).toBe("valid");
    const bad = validator.validate(GetSessionRequestSchema, create(GetSessionRequestSchema, { sessionId: `sess_${ulid.slice(1)}\n` }));
    expect(bad.kind).toBe("invalid");
  });
});
