import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { comparePositions, decodeCursor, encodeCursor, positionBelowHorizon } from "../../src/domain/cursor.js";
import { DomainError } from "../../src/domain/errors.js";

const int8 = fc.bigInt({ min: 0n, max: (1n << 63n) - 1n });

describe("cursor", () => {
  it("round-trips every position", () => {
    fc.assert(
      fc.property(int8, int8, (txId, id) => {
        expect(decodeCursor(encodeCursor({ txId, id }))).toEqual({ txId, id });
      }),
    );
  });

  it.each(["", "abc", "MTo3NTU", encodeCursor({ txId: 1n, id: 2n }) + "=", Buffer.from("1:01:2").toString("base64url"), Buffer.from(`1:${1n << 63n}:1`).toString("base64url"), "x".repeat(65)])(
    "rejects %j with INVALID_CURSOR",
    (cursor) => {
      const error = (() => {
        try {
          decodeCursor(cursor);
          return null;
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).reason).toBe("INVALID_CURSOR");
    },
  );

  it("orders by transaction id, then id", () => {
    expect(comparePositions({ txId: 1n, id: 9n }, { txId: 2n, id: 1n })).toBeLessThan(0);
    expect(comparePositions({ txId: 2n, id: 1n }, { txId: 2n, id: 2n })).toBeLessThan(0);
    expect(comparePositions({ txId: 2n, id: 2n }, { txId: 2n, id: 2n })).toBe(0);
    expect(comparePositions({ txId: 3n, id: 0n }, { txId: 2n, id: 99n })).toBeGreaterThan(0);
  });

  it("places the position below a horizon after every event of older transactions", () => {
    const below = positionBelowHorizon(100n);
    expect(comparePositions(below, { txId: 99n, id: (1n << 63n) - 1n })).toBe(0);
    expect(comparePositions(below, { txId: 100n, id: 0n })).toBeLessThan(0);
  });
});
