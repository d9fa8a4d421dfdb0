/**
 * The session service: loads state, applies the domain rules and stores the
 * result, one transaction per mutating request. It knows SQL only through the
 * repository and nothing about the transport, so any RPC adapter (Connect
 * today, a plain grpc-js server later) can sit in front of it.
 */
import type { Logger } from "pino";
import type { Sql, Executor } from "../db/database.js";
import { isDatabaseUnavailable, isRetryable } from "../db/errors.js";
import * as repo from "../db/session-repository.js";
import { DomainError } from "../domain/errors.js";
import { decodePageToken, encodePageToken } from "../domain/page-token.js";
import {
  checkAppend,
  checkStart,
  isReplay,
  LIFECYCLE_TYPES,
  planAppend,
  planEnd,
  planHeartbeat,
  planStart,
  requestHash,
  sessionAsStarted,
  type AppendCommand,
  type EndCommand,
  type Session,
  type SessionEvent,
  type SessionState,
  type SessionWithEvent,
  type StartCommand,
} from "../domain/session.js";

/** Configures `createSessionService`. */
export interface SessionServiceOptions {
  sql: Sql;
  /** Idle timeout of sessions started without one, in ms. */
  defaultIdleTimeoutMs: number;
  log: Logger;
  /**
   * Called after a transaction that wrote events has committed (not for
   * replays or heartbeats). The feed uses it to wake its readers.
   */
  onEventsCommitted?: () => void;
}

/** Holds the result of a mutating call; `replayed` is true for a retried request. */
export type Outcome<T> = T & { replayed: boolean };

/** Holds a ListSessions request. `pageSize` 0 means the default (50). */
export interface ListSessionsQuery {
  userId: string | null;
  state: SessionState | null;
  pageSize: number;
  pageToken: string;
}

/** Holds a ListSessionEvents request. `pageSize` 0 means the default (50). */
export interface ListSessionEventsQuery {
  sessionId: string;
  pageSize: number;
  pageToken: string;
}

/** Holds one page of a listing. */
export interface Page<T> {
  items: T[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/** Names the operations of the session service. */
export type SessionService = ReturnType<typeof createSessionService>;

const DEFAULT_PAGE_SIZE = 50;
const MAX_ATTEMPTS = 5;

/** Signals that a session changed between read and write; the transaction is retried. */
class StaleSession extends Error {}

/** Creates the session service. */
export function createSessionService(options: SessionServiceOptions) {
  const { sql, defaultIdleTimeoutMs, log } = options;
  const committed = options.onEventsCommitted ?? (() => {});

  /** Reports committed events to `onEventsCommitted`, then returns the outcome. */
  function announce<T extends { replayed: boolean }>(outcome: T): T {
    if (!outcome.replayed) committed();
    return outcome;
  }

  /**
   * Runs `work` in a transaction, retrying when a concurrent writer won a
   * race (unique violation, deadlock, serialization failure, stale session),
   * and turning connection failures into DATABASE_UNAVAILABLE.
   */
  async function transaction<T>(work: (tx: Executor) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await sql.begin(work)) as T;
      } catch (error) {
        const retry = error instanceof StaleSession || isRetryable(error);
        if (retry && attempt < MAX_ATTEMPTS) {
          log.debug({ err: error, attempt }, "retrying transaction");
          continue;
        }
        throw translate(error);
      }
    }
  }

  /** Runs a read on the pool, turning connection failures into DATABASE_UNAVAILABLE. */
  async function read<T>(work: (ex: Executor) => Promise<T>): Promise<T> {
    try {
      return await work(sql);
    } catch (error) {
      throw translate(error);
    }
  }

  /** Locks a session's user and loads the session, its idempotency record and the clock. */
  async function loadForWrite(tx: Executor, sessionId: string, recordId: string | null) {
    const [found, session, existing, now] = await Promise.all([
      repo.lockUserOfSession(tx, sessionId),
      repo.findSession(tx, sessionId),
      recordId === null ? null : repo.findEventOfSessionUser(tx, sessionId, recordId),
      repo.readClock(tx),
    ]);
    if (!found || session === null) {
      throw new DomainError("SESSION_NOT_FOUND", "no session has this session_id", { session_id: sessionId });
    }
    return { session, existing, now };
  }

  return {
    /**
     * Starts a session (see StartSession in the proto).
     *
     * @throws DomainError ACTIVE_SESSION_EXISTS, RECORD_ID_REUSED, INVALID_REQUEST.
     */
    async startSession(command: StartCommand): Promise<Outcome<SessionWithEvent>> {
      checkStart(command);
      const hash = requestHash("StartSession", command);
      const outcome = await transaction(async (tx) => {
        await repo.lockUser(tx, command.userId);
        const [existing, open, now] = await Promise.all([
          repo.findEventByRecordId(tx, command.userId, command.recordId),
          repo.findOpenSession(tx, command.userId),
          repo.readClock(tx),
        ]);
        if (isReplay(existing, hash)) {
          const stored = await repo.findSession(tx, existing!.sessionId);
          return { session: sessionAsStarted(stored!, existing!), event: existing!, replayed: true };
        }
        const planned = planStart(command, hash, open, now, defaultIdleTimeoutMs);
        const event = await repo.insertSessionWithEvent(tx, planned.session, planned.event);
        return { session: planned.session, event, replayed: false };
      });
      return announce(outcome);
    },

    /**
     * Ends a session; ending an ended session returns its original end event.
     *
     * @throws DomainError SESSION_NOT_FOUND, RECORD_ID_REUSED.
     */
    async endSession(command: EndCommand): Promise<Outcome<SessionWithEvent>> {
      const hash = requestHash("EndSession", command);
      const outcome = await transaction(async (tx) => {
        const { session, existing, now } = await loadForWrite(tx, command.sessionId, command.recordId);
        if (isReplay(existing, hash) || session.state === "ended") {
          const ended = existing ?? (await repo.findEventByType(tx, session, LIFECYCLE_TYPES.ended));
          return { session, event: ended!, replayed: true };
        }
        const planned = planEnd(session, command, hash, now);
        const event = await repo.updateSessionWithEvent(tx, planned.session, session.lastSeq, planned.event);
        if (event === null) throw new StaleSession();
        return { session: planned.session, event, replayed: false };
      });
      return announce(outcome);
    },

    /**
     * Records activity on a session.
     *
     * @throws DomainError SESSION_NOT_FOUND, SESSION_ENDED.
     */
    async heartbeatSession(sessionId: string): Promise<Session> {
      return transaction(async (tx) => {
        const { session, now } = await loadForWrite(tx, sessionId, null);
        const touched = planHeartbeat(session, now);
        if (!(await repo.storeSession(tx, touched, session.lastSeq))) throw new StaleSession();
        return touched;
      });
    },

    /**
     * Appends a caller's event to a session.
     *
     * @throws DomainError SESSION_NOT_FOUND, SESSION_ENDED, RESERVED_EVENT_TYPE, RECORD_ID_REUSED, INVALID_REQUEST.
     */
    async appendSessionEvent(command: AppendCommand): Promise<Outcome<{ event: SessionEvent }>> {
      checkAppend(command);
      const hash = requestHash("AppendSessionEvent", command);
      const outcome = await transaction(async (tx) => {
        const { session, existing, now } = await loadForWrite(tx, command.sessionId, command.recordId);
        if (isReplay(existing, hash)) return { event: existing!, replayed: true };
        const planned = planAppend(session, command, hash, now);
        const event = await repo.updateSessionWithEvent(tx, planned.session, session.lastSeq, planned.event);
        if (event === null) throw new StaleSession();
        return { event, replayed: false };
      });
      return announce(outcome);
    },

    /**
     * Returns a session.
     *
     * @throws DomainError SESSION_NOT_FOUND.
     */
    async getSession(sessionId: string): Promise<Session> {
      const session = await read((ex) => repo.findSession(ex, sessionId));
      if (session === null) {
        throw new DomainError("SESSION_NOT_FOUND", "no session has this session_id", { session_id: sessionId });
      }
      return session;
    },

    /**
     * Lists sessions newest first.
     *
     * @throws DomainError INVALID_PAGE_TOKEN.
     */
    async listSessions(query: ListSessionsQuery): Promise<Page<Session>> {
      const filters = { userId: query.userId, state: query.state };
      const position = decodePageToken(query.pageToken, filters);
      const after = position === null ? null : parseSessionPosition(position);
      const limit = query.pageSize || DEFAULT_PAGE_SIZE;
      const rows = await read((ex) => repo.listSessions(ex, filters, after, limit + 1));
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      const nextPageToken =
        rows.length > limit && last
          ? encodePageToken(filters, { t: last.startTime.toISOString(), s: last.sessionId })
          : "";
      return { items, nextPageToken };
    },

    /**
     * Lists a session's events in seq order.
     *
     * @throws DomainError SESSION_NOT_FOUND, INVALID_PAGE_TOKEN.
     */
    async listSessionEvents(query: ListSessionEventsQuery): Promise<Page<SessionEvent>> {
      const filters = { sessionId: query.sessionId };
      const position = decodePageToken(query.pageToken, filters);
      const afterSeq = position === null ? 0 : position.q;
      if (typeof afterSeq !== "number" || !Number.isSafeInteger(afterSeq) || afterSeq < 0) {
        throw new DomainError("INVALID_PAGE_TOKEN", "page_token is not a token returned by this service");
      }
      const limit = query.pageSize || DEFAULT_PAGE_SIZE;
      const session = await this.getSession(query.sessionId);
      const rows = await read((ex) => repo.listSessionEvents(ex, session, afterSeq, limit + 1));
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      const nextPageToken = rows.length > limit && last ? encodePageToken(filters, { q: last.seq }) : "";
      return { items, nextPageToken };
    },
  };
}

function parseSessionPosition(position: Record<string, unknown>): repo.SessionPosition {
  const startTime = typeof position.t === "string" ? new Date(position.t) : new Date(Number.NaN);
  if (Number.isNaN(startTime.getTime()) || typeof position.s !== "string" || position.s.length > 64) {
    throw new DomainError("INVALID_PAGE_TOKEN", "page_token is not a token returned by this service");
  }
  return { startTime, sessionId: position.s };
}

/** Turns an error from the database layer into the error the caller should see. */
export function translate(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  if (isDatabaseUnavailable(error)) {
    return new DomainError("DATABASE_UNAVAILABLE", "the database is unavailable; retry later");
  }
  return error;
}
