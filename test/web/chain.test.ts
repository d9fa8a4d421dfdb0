/** The console's WebCrypto chain check (web/lib/chain.ts) agrees with the reference (src/domain/chain.ts). */
import { describe, expect, it } from "vitest";
import { chainHash as referenceHash, verifyChain as referenceVerify } from "../../src/domain/chain.js";
import { canonicalJson as referenceCanonical, jcs as referenceJcs, type JsonObject } from "../../src/domain/json.js";
import { canonicalJson, chainHash, jcs, verifyChain } from "../../web/lib/chain.js";
import { asReceived, storedSession } from "./fixtures.js";

const PAYLOADS: JsonObject[] = [
  { idle_timeout: "900s", metadata: { channel: "voice", z: 1, a: [1, 2, { y: null, b: true }] }, is_training_data: false },
  { text: "héllo wörld ✓ 😀", "ключ": "значение", nested: { zz: 1.5, aa: -3, mm: "x" } },
  { "": "empty key", B: 1, a: 2, _: 3, "10": "ten", "9": "nine" },
  {},
];

describe("jcs and canonicalJson", () => {
  it("are the reference's, key order included", () => {
    for (const p of PAYLOADS) {
      expect(jcs(p)).toBe(referenceJcs(p));
      expect(canonicalJson(p)).toBe(referenceCanonical(p));
    }
  });
});

describe("chainHash (WebCrypto)", () => {
  it("gives the stored hash of every event, as the reference computes it", async () => {
    const stored = storedSession(PAYLOADS, { performer: "nurse-7" });
    const received = asReceived(stored);
    let previous = "";
    for (const [i, e] of received.entries()) {
      expect(await chainHash(previous, e)).toBe(stored[i]!.hash);
      previous = e.hash;
    }
  });
});

describe("verifyChain", () => {
  it("says verified for an intact chain", async () => {
    const events = asReceived(storedSession(PAYLOADS));
    expect(await verifyChain(events, 4)).toEqual({ ok: true, events: 4 });
  });

  it("names the first altered event, as the reference does", async () => {
    const stored = storedSession(PAYLOADS);
    stored[2] = { ...stored[2]!, payload: { edited: true } };
    const reference = referenceVerify(stored[0]!.sessionId, stored, 4, stored[3]!.hash);
    const report = await verifyChain(asReceived(stored), 4);
    expect(report).toMatchObject({ ok: false, seq: 3 });
    expect(reference).toMatchObject({ seq: 3 });
  });

  it("names a changed time or a changed type", async () => {
    const stored = storedSession(PAYLOADS);
    const received = asReceived(stored);
    expect(await verifyChain(received.map((e) => (e.seq === 2 ? { ...e, eventTime: "2025-03-04T05:06:08.324Z" } : e)), 4)).toMatchObject({ ok: false, seq: 2 });
    expect(await verifyChain(received.map((e) => (e.seq === 4 ? { ...e, type: "care.other" } : e)), 4)).toMatchObject({ ok: false, seq: 4 });
  });

  it("names a missing event and a dropped tail", async () => {
    const received = asReceived(storedSession(PAYLOADS));
    expect(await verifyChain(received.filter((e) => e.seq !== 2), 4)).toMatchObject({ ok: false, seq: 2 });
    expect(await verifyChain(received.slice(0, 3), 4)).toMatchObject({ ok: false, seq: 4 });
  });

  it("accepts links written before RFC 8785 (canonicalJson), as the reference does", async () => {
    let previous = "";
    const legacy = storedSession(PAYLOADS).map((event) => {
      previous = referenceHash(previous, event, referenceCanonical);
      return { ...event, hash: previous };
    });
    expect(legacy[2]!.hash).not.toBe(storedSession(PAYLOADS)[2]!.hash); // "10" and "9": the two forms differ
    expect(await verifyChain(asReceived(legacy), 4)).toEqual({ ok: true, events: 4 });
    const altered = legacy.map((e) => (e.seq === 3 ? { ...e, payload: { ...e.payload, "9": "NINE" } } : e));
    expect(await verifyChain(asReceived(altered), 4)).toMatchObject({ ok: false, seq: 3 });
  });

  it("does not claim anything past a withheld payload", async () => {
    const received = asReceived(storedSession(PAYLOADS));
    received[1] = { ...received[1]!, payload: {}, payloadWithheld: true };
    expect(await verifyChain(received, 4)).toMatchObject({ ok: "unknown", seq: 2 });
  });
});
