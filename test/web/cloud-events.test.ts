/** The console's download (web/lib/cloud-events.ts) writes the lines `session-manager export` writes. */
import { describe, expect, it } from "vitest";
import { toCloudEvent as referenceCloudEvent } from "../../src/service/cloud-events.js";
import { encodePathSegment } from "../../src/domain/cloud-event.js";
import { toJsonLines } from "../../web/lib/cloud-events.js";
import { asReceived, storedSession } from "./fixtures.js";

describe("toJsonLines", () => {
  it("equals the export's lines byte for byte, performer and odd sources included", () => {
    for (const options of [{}, { performer: "nurse-7", source: "speech worker/ü ✓?#%" }]) {
      const stored = storedSession([{ a: 1 }, { text: "héllo", list: [1, { b: null }] }, {}], options);
      const expected = stored.map((e) => `${JSON.stringify(referenceCloudEvent(e))}\n`).join("");
      expect(toJsonLines(asReceived(stored))).toBe(expected);
    }
  });

  it("percent-encodes what a path segment may not hold, as UTF-8", () => {
    expect(encodePathSegment("a b/ü")).toBe("a%20b%2F%C3%BC");
    expect(encodePathSegment("ok-._~!$&'()*+,;=:@")).toBe("ok-._~!$&'()*+,;=:@");
    expect(encodePathSegment("😀")).toBe("%F0%9F%98%80");
  });
});
