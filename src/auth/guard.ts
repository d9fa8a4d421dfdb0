/**
 * What the handlers check about the caller, after the auth interceptor has
 * authenticated it and checked its role: that a user-scoped caller (a JWT)
 * only touches its own user's sessions, how many Watch streams one
 * principal holds open on this replica, and whether this replica can take
 * on another stream at all (admission by load: writers first).
 */
import type { ContextValues } from "@connectrpc/connect";
import type { Sql } from "../db/database.js";
import { findSessionOwner } from "../db/access-repository.js";
import { toDomainError } from "../db/errors.js";
import { DomainError } from "../domain/errors.js";
import type { LoadMonitor } from "../observability/event-loop.js";
import { TimerAt } from "../timer-at.js";
import { PRINCIPAL, checkUser, type Principal } from "./principal.js";

/** Configures `createGuard`. */
export interface GuardOptions {
  sql: Sql;
  /** Watch streams one principal may hold open on this replica (WATCH_STREAMS_PER_PRINCIPAL); AUTH=off's anonymous caller has no limit. */
  streamsPerPrincipal: number;
  /** Refuses new streams while it reports overload (WATCH_ADMISSION_DELAY_MS); null admits regardless of load. */
  load?: LoadMonitor | null;
}

/** A Watch stream's hold on its principal's stream budget. */
export interface StreamGrant {
  /** Aborts when the credential expires or is revoked (the stream then ends with `ended()`); null when neither can happen. */
  signal: AbortSignal | null;
  /** The UNAUTHENTICATED error to end the stream with once `signal` aborted. */
  ended(): DomainError;
  /** Gives the slot back (call on every way the stream ends; calling twice is harmless). */
  release(): void;
}

/** The handlers' checks (see the module comment). */
export interface Guard {
  /** Checks that the caller may act on `userId`'s sessions (what StartSession, ListSessions and Watch name). @throws DomainError USER_NOT_ALLOWED. */
  checkUser(values: ContextValues, userId: string): void;
  /**
   * Checks that the caller may act on the session `sessionId`. Costs one
   * indexed read, for user-scoped callers only; an unknown session gets the
   * same USER_NOT_ALLOWED as another user's (AIP-211).
   *
   * @throws DomainError USER_NOT_ALLOWED, DATABASE_UNAVAILABLE.
   */
  checkSession(values: ContextValues, sessionId: string): Promise<void>;
  /**
   * Takes a Watch stream slot for the caller.
   * @throws DomainError TOO_MANY_STREAMS with a retry delay: metadata.scope is "load" while this
   *   replica's event loop lags (it refuses every new stream, whoever asks), "principal" when the
   *   caller holds its own limit.
   */
  openStream(values: ContextValues): StreamGrant;
}

/** How long a caller refused with TOO_MANY_STREAMS is asked to wait, in ms (RetryInfo). */
const RETRY_AFTER_MS = 1_000;

/** Creates the replica's guard. */
export function createGuard({ sql, streamsPerPrincipal, load = null }: GuardOptions): Guard {
  const open = new Map<string, number>();

  function principalOf(values: ContextValues): Principal {
    const principal = values.get(PRINCIPAL);
    // Fails closed when a server is assembled without the auth interceptor.
    if (principal === null) throw new DomainError("CREDENTIALS_MISSING", "this call needs a credential");
    return principal;
  }

  return {
    checkUser(values, userId) {
      checkUser(principalOf(values), userId);
    },

    async checkSession(values, sessionId) {
      const principal = principalOf(values);
      if (principal.userId === null) return;
      let owner;
      try {
        owner = await findSessionOwner(sql, sessionId);
      } catch (error) {
        throw toDomainError(error);
      }
      checkUser(principal, owner);
    },

    openStream(values) {
      const principal = principalOf(values);
      const delayMs = load?.overloadedDelayMs() ?? null;
      if (delayMs !== null) {
        const error = new DomainError(
          "TOO_MANY_STREAMS",
          `this replica is overloaded (event-loop delay p99 ${delayMs} ms) and takes no new WatchSessionEvents streams; retry later or on another replica`,
          { scope: "load", delay_ms: String(delayMs) },
        );
        error.retryAfterMs = RETRY_AFTER_MS;
        throw error;
      }
      const limited = principal.id !== "anonymous";
      const count = open.get(principal.id) ?? 0;
      if (limited && count >= streamsPerPrincipal) {
        const error = new DomainError(
          "TOO_MANY_STREAMS",
          `this credential holds its limit of ${streamsPerPrincipal} WatchSessionEvents streams on this replica; close one or retry later`,
          { limit: String(streamsPerPrincipal), scope: "principal" },
        );
        error.retryAfterMs = RETRY_AFTER_MS;
        throw error;
      }
      if (limited) open.set(principal.id, count + 1);
      const expiry = principal.expiresAtMs === null ? null : new Expiry(principal.expiresAtMs);
      let signal = principal.revoked;
      if (expiry !== null) signal = signal === null ? expiry.signal : AbortSignal.any([expiry.signal, signal]);
      return new Grant(signal, principal, limited, expiry, open);
    },
  };
}

/**
 * A stream's slot (see `StreamGrant`); `open` counts each limited
 * principal's open streams on this replica. A class: every open stream
 * holds one (two closures and their context before).
 */
class Grant implements StreamGrant {
  private released = false;

  constructor(
    readonly signal: AbortSignal | null,
    private readonly principal: Principal,
    private readonly limited: boolean,
    private readonly expiry: Expiry | null,
    private readonly open: Map<string, number>,
  ) {}

  ended(): DomainError {
    return new DomainError(
      "CREDENTIALS_INVALID",
      this.principal.revoked?.aborted ? "the credential was revoked" : "the credential expired; resume from the last cursor with a fresh one",
    );
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.expiry?.cancel();
    if (!this.limited) return;
    const { open, principal } = this;
    const left = (open.get(principal.id) ?? 1) - 1;
    if (left === 0) open.delete(principal.id);
    else open.set(principal.id, left);
  }
}

/** Aborts `signal` at `atMs` (ms since the epoch): a credential's expiry. */
class Expiry {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  private readonly timer: TimerAt;

  constructor(atMs: number) {
    this.timer = new TimerAt(atMs, () => this.controller.abort());
  }

  cancel(): void {
    this.timer.cancel();
  }
}
