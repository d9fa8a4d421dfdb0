/**
 * The session service: loads state, applies the domain rules and stores the
 * result in a transaction. StartSession, EndSession, AppendSessionEvent and
 * HeartbeatSession go through the replica's write batcher (group commit,
 * src/service/write-batch.ts): concurrent calls share one transaction, each
 * with its own answer. Pause, Resume and Update run one transaction each.
 * It knows SQL only through the repositories and nothing about the
 * transport: both RPC adapters (connect-node and grpc-js) call the same
 * instance.
 *
 * Every write transaction takes the advisory lock of its users first and
 * reads the state and the database clock after it, so decisions see the
 * latest committed state and all times come from one clock.
 */
import type { Logger } from "pino";
import type { Sql, Transaction } from "../db/database.js";
import { findIdempotencyRecord, insertRequestRecord } from "../db/idempotency-repository.js";
import { lockUserOfSession, readClock } from "../db/locks.js";
import * as repo from "../db/session-repository.js";
import {
  checkAppend,
  checkStart,
  checkUpdate,
  classifyRequest,
  requestHash,
  type AppendCommand,
  type EndCommand,
  type PauseResumeCommand,
  type StartCommand,
  type UpdateCommand,
} from "../domain/commands.js";
import { DomainError } from "../domain/errors.js";
import {
  planLapse,
  planPause,
  planResume,
  planUpdate,
  type SessionChange,
} from "../domain/lifecycle.js";
import { decodePageToken, encodePageToken } from "../domain/page-token.js";
import { effectiveSession, type Session, type SessionEvent, type SessionState } from "../domain/session.js";
import { reportOf, type CommitReport, type OnCommitted } from "./commits.js";
import { readOnPrimary, type ReadOn } from "../db/read-pools.js";
import { inRead, inTransaction, StaleSession } from "./transaction.js";
import { createWriteBatcher, DEFAULT_WRITE_BATCH_MAX, DEFAULT_WRITE_BATCH_WAIT_US, DEFAULT_WRITE_BATCHES_IN_FLIGHT } from "./write-batch.js";

/** Configures `createSessionService`. */
export interface SessionServiceOptions {
  sql: Sql;
  /** Idle timeout of sessions started without one, in ms. */
  defaultIdleTimeoutMs: number;
  log: Logger;
  /**
   * Called after a transaction that wrote events has committed (not for
   * replays or heartbeats), with what it wrote. The feed uses it to wake its
   * readers, the metrics to count.
   */
  onEventsCommitted?: OnCommitted;
  /** Most mutating commands per transaction (WRITE_BATCH_MAX); 1 turns group commit off. */
  writeBatchMax?: number;
  /** How long a command waits for others to share its transaction, in microseconds (WRITE_BATCH_WAIT_US). */
  writeBatchWaitUs?: number;
  /** Group-commit transactions running at once (WRITE_BATCHES_IN_FLIGHT). */
  writeBatchesInFlight?: number;
  /**
   * Where GetSession, ListSessions and ListSessionEvents read
   * (READ_CONSISTENCY): a standby's `ReadPools.read`, or the primary (the
   * default: read-your-writes). Writes and idempotency lookups always use `sql`.
   */
  unaryReads?: ReadOn;
}

/** Holds the result of a mutating call; `replayed` is true when nothing was written. */
export type Outcome<T> = T & { replayed: boolean };

/** Holds a session together with the event that a request wrote or replays. */
export interface SessionWithEvent {
  session: Session;
  event: SessionEvent;
}

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

/** One page of a listing (AIP-158); the next page needs `nextPageToken` and the same filters, or it is INVALID_PAGE_TOKEN. */
export interface Page<T> {
  items: T[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/**
 * The session lifecycle and the event log, one transaction per mutating
 * call (the contract's comments in proto/ give each RPC's rules).
 */
export interface SessionService {
  /**
   * Starts a session. Records the end of the user's lapsed or superseded
   * session first, in the same transaction.
   *
   * @throws DomainError ACTIVE_SESSION_EXISTS, RECORD_ID_REUSED, INVALID_REQUEST.
   */
  startSession(command: StartCommand): Promise<Outcome<SessionWithEvent>>;
  /**
   * Ends a session. Ending an ended session returns its original end event;
   * ending a lapsed one records and returns its timeout end.
   *
   * @throws DomainError SESSION_NOT_FOUND, RECORD_ID_REUSED.
   */
  endSession(command: EndCommand): Promise<Outcome<SessionWithEvent>>;
  /**
   * Moves a session's idle deadline (no event is written).
   *
   * @throws DomainError SESSION_NOT_FOUND, SESSION_ENDED, SESSION_PAUSED.
   */
  heartbeatSession(sessionId: string): Promise<Session>;
  /**
   * Appends a caller's event at the session's next seq.
   *
   * @throws DomainError SESSION_NOT_FOUND, SESSION_ENDED, SESSION_PAUSED, RESERVED_EVENT_TYPE, RECORD_ID_REUSED, INVALID_REQUEST.
   */
  appendSessionEvent(command: AppendCommand): Promise<Outcome<{ event: SessionEvent }>>;
  /**
   * Stops the idle clock; pausing a paused session changes nothing (and is recorded, so its retry never acts).
   *
   * @throws DomainError SESSION_NOT_FOUND, SESSION_ENDED, RECORD_ID_REUSED.
   */
  pauseSession(command: PauseResumeCommand): Promise<Outcome<{ session: Session }>>;
  /**
   * Restarts the idle clock from now; resuming an active session changes nothing.
   *
   * @throws DomainError SESSION_NOT_FOUND, SESSION_ENDED, RECORD_ID_REUSED.
   */
  resumeSession(command: PauseResumeCommand): Promise<Outcome<{ session: Session }>>;
  /**
   * Replaces metadata and/or is_training_data, also on ended sessions (curation).
   *
   * @throws DomainError SESSION_NOT_FOUND, RECORD_ID_REUSED, INVALID_REQUEST.
   */
  updateSession(command: UpdateCommand): Promise<Outcome<{ session: Session }>>;
  /**
   * Returns a session as of the database's now (a lapsed session reads as ENDED).
   *
   * @throws DomainError SESSION_NOT_FOUND.
   */
  getSession(sessionId: string): Promise<Session>;
  /**
   * Lists sessions newest first (start_time, then session_id).
   *
   * @throws DomainError INVALID_PAGE_TOKEN.
   */
  listSessions(query: ListSessionsQuery): Promise<Page<Session>>;
  /**
   * Lists a session's events in seq order.
   *
   * @throws DomainError SESSION_NOT_FOUND, INVALID_PAGE_TOKEN.
   */
  listSessionEvents(query: ListSessionEventsQuery): Promise<Page<SessionEvent>>;
}

const DEFAULT_PAGE_SIZE = 50;

function notFound(sessionId: string): DomainError {
  return new DomainError("SESSION_NOT_FOUND", "no session has this session_id", { session_id: sessionId });
}

/** Creates the service; src/wiring.ts makes the one instance both RPC adapters call. Writes go through `inTransaction` (retried on races). */
export function createSessionService(options: SessionServiceOptions): SessionService {
  const { sql, defaultIdleTimeoutMs, log } = options;
  const committed: OnCommitted = options.onEventsCommitted ?? (() => {});
  const transaction = <T>(work: (tx: Transaction) => Promise<T>) => inTransaction(sql, log, work);
  const reads = options.unaryReads ?? readOnPrimary(sql);
  const unaryRead = <T>(work: (ex: Sql) => Promise<T>) => inRead(sql, () => reads(work));
  const batcher = createWriteBatcher({
    sql,
    log,
    defaultIdleTimeoutMs,
    maxBatch: options.writeBatchMax ?? DEFAULT_WRITE_BATCH_MAX,
    waitUs: options.writeBatchWaitUs ?? DEFAULT_WRITE_BATCH_WAIT_US,
    maxInFlight: options.writeBatchesInFlight ?? DEFAULT_WRITE_BATCHES_IN_FLIGHT,
    onEventsCommitted: committed,
  });

  /** Reports what a committed transaction wrote to `onEventsCommitted`, then returns the outcome. */
  function announce<T extends { replayed: boolean }>(outcome: T, report: CommitReport): T {
    if (!outcome.replayed && report.events > 0) committed(report);
    return outcome;
  }

  /** Stores changes; a change that did not apply means a writer without the lock raced us. */
  async function store(tx: Transaction, changes: SessionChange[]): Promise<SessionEvent[]> {
    const events = await repo.applyChanges(tx, changes);
    if (events.length !== changes.length) throw new StaleSession();
    return events;
  }

  /**
   * Locks a session's user and loads the session, the clock and the
   * idempotency record of `recordId`: the event it wrote (`existing`), and
   * `record`, that event or the record of an event-less request.
   */
  async function loadForWrite(tx: Transaction, sessionId: string, recordId: string | null) {
    const [found, session, earlier, now] = await Promise.all([
      lockUserOfSession(tx, sessionId),
      repo.findSession(tx, sessionId),
      recordId === null ? null : findIdempotencyRecord(tx, { sessionId }, recordId),
      readClock(tx),
    ]);
    if (!found || session === null) throw notFound(sessionId);
    return { session, existing: earlier?.event ?? null, record: earlier?.record ?? null, now };
  }

  /**
   * Runs a state change that answers with the session (pause, resume, update):
   * a retry or a no-op returns the session as it is now.
   */
  async function changeSession(
    method: string,
    command: PauseResumeCommand | UpdateCommand,
    plan: (session: Session, hash: string, now: Date) => SessionChange | null,
  ): Promise<Outcome<{ session: Session }>> {
    const hash = requestHash(method, command);
    let stored: SessionChange[] = [];
    const outcome = await transaction(async (tx) => {
      stored = [];
      const { session, record, now } = await loadForWrite(tx, command.sessionId, command.recordId);
      if (classifyRequest(record, hash) === "retry") return { session: effectiveSession(session, now), replayed: true };
      // A lapsed session's end is recorded first, so the log stays in time order.
      const lapse = planLapse(session, now);
      const current = lapse?.after ?? session;
      const planned = plan(current, hash, now);
      if (lapse !== null) {
        await store(tx, [lapse]);
        stored.push(lapse);
      }
      if (planned === null) {
        // Nothing changed, so no event records this request: remember it, or a later retry would act.
        await insertRequestRecord(tx, session, command.recordId, hash);
        return { session: current, replayed: lapse === null };
      }
      await store(tx, [planned]);
      stored.push(planned);
      return { session: planned.after, replayed: false };
    });
    return announce(outcome, reportOf(stored));
  }

  return {
    async startSession(command: StartCommand): Promise<Outcome<SessionWithEvent>> {
      checkStart(command);
      const result = await batcher.submit({ kind: "start", command, hash: requestHash("StartSession", command) });
      if (result.kind !== "start") throw new Error(`unexpected ${result.kind} result`);
      return { session: result.session, event: result.event, replayed: result.replayed };
    },

    async endSession(command: EndCommand): Promise<Outcome<SessionWithEvent>> {
      const result = await batcher.submit({ kind: "end", command, hash: requestHash("EndSession", command) });
      if (result.kind !== "end") throw new Error(`unexpected ${result.kind} result`);
      return { session: result.session, event: result.event, replayed: result.replayed };
    },

    async heartbeatSession(sessionId: string): Promise<Session> {
      const result = await batcher.submit({ kind: "heartbeat", sessionId });
      if (result.kind !== "heartbeat") throw new Error(`unexpected ${result.kind} result`);
      return result.session;
    },

    async appendSessionEvent(command: AppendCommand): Promise<Outcome<{ event: SessionEvent }>> {
      checkAppend(command);
      const result = await batcher.submit({ kind: "append", command, hash: requestHash("AppendSessionEvent", command) });
      if (result.kind !== "append") throw new Error(`unexpected ${result.kind} result`);
      return { event: result.event, replayed: result.replayed };
    },

    pauseSession(command: PauseResumeCommand): Promise<Outcome<{ session: Session }>> {
      return changeSession("PauseSession", command, (session, hash, now) => planPause(session, command.recordId, hash, now));
    },

    resumeSession(command: PauseResumeCommand): Promise<Outcome<{ session: Session }>> {
      return changeSession("ResumeSession", command, (session, hash, now) => planResume(session, command.recordId, hash, now));
    },

    updateSession(command: UpdateCommand): Promise<Outcome<{ session: Session }>> {
      checkUpdate(command);
      return changeSession("UpdateSession", command, (session, hash, now) => planUpdate(session, command, hash, now));
    },

    async getSession(sessionId: string): Promise<Session> {
      const read = await unaryRead((ex) => repo.findSessionWithClock(ex, sessionId));
      if (read === null) throw notFound(sessionId);
      return effectiveSession(read.session, read.now);
    },

    async listSessions(query: ListSessionsQuery): Promise<Page<Session>> {
      const filters = { userId: query.userId, state: query.state };
      const position = decodePageToken(query.pageToken, filters);
      const after = position === null ? null : parseSessionPosition(position);
      const limit = query.pageSize || DEFAULT_PAGE_SIZE;
      const { sessions, now } = await unaryRead((ex) => repo.listSessions(ex, filters, after, limit + 1));
      const items = sessions.slice(0, limit).map((session) => effectiveSession(session, now));
      const last = items.at(-1);
      const nextPageToken =
        sessions.length > limit && last ? encodePageToken(filters, { t: last.startTime.toISOString(), s: last.sessionId }) : "";
      return { items, nextPageToken };
    },

    async listSessionEvents(query: ListSessionEventsQuery): Promise<Page<SessionEvent>> {
      const filters = { sessionId: query.sessionId };
      const position = decodePageToken(query.pageToken, filters);
      const afterSeq = position === null ? 0 : position.q;
      if (typeof afterSeq !== "number" || !Number.isSafeInteger(afterSeq) || afterSeq < 0) {
        throw new DomainError("INVALID_PAGE_TOKEN", "page_token is not a token returned by this service");
      }
      const limit = query.pageSize || DEFAULT_PAGE_SIZE;
      const session = await unaryRead((ex) => repo.findSession(ex, query.sessionId));
      if (session === null) throw notFound(query.sessionId);
      const rows = await unaryRead((ex) => repo.listSessionEvents(ex, session, afterSeq, limit + 1));
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      const nextPageToken = rows.length > limit && last ? encodePageToken(filters, { q: last.seq }) : "";
      return { items, nextPageToken };
    },
  };
}

const SESSION_ID = /^sess_[0-9A-HJKMNP-TV-Z]{26}$/;
const TOKEN_TIME_RANGE = [Date.UTC(2000, 0, 1), Date.UTC(2100, 0, 1)] as const;

/** Checks a decoded ListSessions position, so a forged token cannot reach SQL as a bad value. */
function parseSessionPosition(position: Record<string, unknown>): repo.SessionPosition {
  const startTime = typeof position.t === "string" ? new Date(position.t) : new Date(Number.NaN);
  const ms = startTime.getTime();
  const valid = ms >= TOKEN_TIME_RANGE[0] && ms < TOKEN_TIME_RANGE[1] && typeof position.s === "string" && SESSION_ID.test(position.s);
  if (!valid) throw new DomainError("INVALID_PAGE_TOKEN", "page_token is not a token returned by this service");
  return { startTime, sessionId: position.s as string };
}
