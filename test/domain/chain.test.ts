/**
 * The hash chain as an auditor sees it: recomputed outside this code (Python's json module
 * writes RFC 8785 text for these payloads), and links written before the chain used RFC 8785.
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { chainHash, verifyChain } from "../../src/domain/chain.js";
import { canonicalJson, type JsonObject } from "../../src/domain/json.js";
import type { SessionEvent } from "../../src/domain/session.js";
import { storedSession } from "../web/fixtures.js";

/** Array-index keys out of UTF-16 order ("10" < "9" as text), at the top and nested; BMP text only, integers and decimals from 1e-4 to below 1e16. */
const PAYLOADS: JsonObject[] = [
  { metadata: { "10": "ten", "9": "nine" } },
  { "10": "ten", "9": "nine", "-a": 1, "1.5": [1, 2.5, { b: true, a: null }], "ключ": "значение", text: "héllo\n✓" },
  {},
  { nested: { "2": { "100": 1, "20": 2 }, "0": [] } },
];

/**
 * An auditor's check, in Python: SHA-256 of json.dumps(sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False), which writes RFC 8785 text while keys stay in the BMP and numbers are integers
 * or decimals from 1e-4 to below 1e16 (README, "Audit and retention").
 */
const AUDITOR = `
import hashlib, json, sys
previous = ""
for e in json.load(sys.stdin):
    link = {"v": 1, "previous_hash": previous, "event_id": e["eventId"], "user_id": e["userId"], "session_id": e["sessionId"],
            "seq": e["seq"], "record_id": e["recordId"], "type": e["type"], "event_time": e["eventTime"], "receive_time": e["receiveTime"],
            "source": e["source"], "performer_id": e["performerId"], "payload": e["payload"]}
    previous = hashlib.sha256(json.dumps(link, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()
    print(previous)
`;

function auditorHashes(events: SessionEvent[]): string[] {
  const input = JSON.stringify(events.map((e) => ({ ...e, position: undefined, eventTime: e.eventTime.toISOString(), receiveTime: e.receiveTime.toISOString() })));
  return execFileSync("python3", ["-c", AUDITOR], { input, encoding: "utf8" }).trim().split("\n");
}

/** The session with every link in the form written before RFC 8785 (canonicalJson). */
function legacySession(payloads: JsonObject[]): SessionEvent[] {
  let previous = "";
  return storedSession(payloads).map((event) => {
    const hash = chainHash(previous, event, canonicalJson);
    previous = hash;
    return { ...event, hash };
  });
}

describe("the hash chain", () => {
  it("is what an auditor computes with another language's JSON library", () => {
    const events = storedSession(PAYLOADS);
    expect(auditorHashes(events)).toEqual(events.map((e) => e.hash));
    expect(verifyChain(events[0]!.sessionId, events, events.length, events.at(-1)!.hash)).toBeNull();
  });

  it("accepts links written before RFC 8785, and still names an altered event among them", () => {
    const events = legacySession(PAYLOADS);
    expect(events[1]!.hash).not.toBe(storedSession(PAYLOADS)[1]!.hash); // the two forms differ for these payloads
    expect(verifyChain(events[0]!.sessionId, events, events.length, events.at(-1)!.hash)).toBeNull();
    const altered = events.map((e) => (e.seq === 2 ? { ...e, payload: { ...e.payload, "9": "NINE" } } : e));
    expect(verifyChain(events[0]!.sessionId, altered, events.length, events.at(-1)!.hash)).toMatchObject({ seq: 2 });
  });
});
