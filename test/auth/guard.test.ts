/** The guard's hold on a Watch stream ends when its credential expires, however far away that is. */
import { createContextValues } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createGuard } from "../../src/auth/guard.js";
import { PRINCIPAL, type Principal } from "../../src/auth/principal.js";
import type { Sql } from "../../src/db/database.js";

const DAY_MS = 86_400_000;

/** The context of a call by a JWT principal that expires `inMs` from now. */
function callerExpiringIn(inMs: number) {
  const principal: Principal = { id: "user:u1", role: "writer", userId: "u1", expiresAtMs: Date.now() + inMs, revoked: null };
  return createContextValues().set(PRINCIPAL, principal);
}

afterEach(() => {
  vi.useRealTimers();
});

describe("a Watch stream's grant", () => {
  // openStream reads nothing from the database.
  const guard = () => createGuard({ sql: null as unknown as Sql, streamsPerPrincipal: 10 });

  it.each([
    ["1 day", DAY_MS],
    ["30 days (past setTimeout's 24.8-day reach)", 30 * DAY_MS],
    ["400 days", 400 * DAY_MS],
  ])("aborts exactly when a credential valid for %s expires", (_name, inMs) => {
    vi.useFakeTimers({ now: Date.parse("2026-12-03T00:00:00Z") });
    const grant = guard().openStream(callerExpiringIn(inMs));
    expect(grant.signal).not.toBeNull();
    vi.advanceTimersByTime(inMs - 1_000);
    expect(grant.signal!.aborted).toBe(false);
    vi.advanceTimersByTime(1_000);
    expect(grant.signal!.aborted).toBe(true);
    expect(grant.ended().reason).toBe("CREDENTIALS_INVALID");
    grant.release();
  });

  it("stops its timer when released", () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-03T00:00:00Z") });
    const grant = guard().openStream(callerExpiringIn(30 * DAY_MS));
    grant.release();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(31 * DAY_MS);
    expect(grant.signal!.aborted).toBe(false);
  });
});
