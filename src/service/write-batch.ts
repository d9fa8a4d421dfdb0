/**
 * Group commit: the mutating commands that arrive together (StartSession,
 * EndSession, AppendSessionEvent, HeartbeatSession) run in one transaction,
 * with the guarantees each has alone.
 *
 * A batch is two pipelined exchanges with PostgreSQL (`beginPipelined`):
 * (1) BEGIN, generic plans for the transaction, one statement that takes
 * the advisory lock of every user involved, in user_id order, then the reads
 * (sessions, user histories, idempotency keys, the clock) behind it; (2) the
 * writes (updated sessions, new sessions and users, events in command
 * order) and COMMIT. In between, the commands
 * are decided one after another, in arrival order, by the same domain rules
 * as alone, each against the state the previous ones left (`BatchState`): a
 * second command with the same record_id sees the first's event and is a
 * retry of it (or RECORD_ID_REUSED), a second StartSession for a user sees
 * the first's session open, appends to one session take consecutive seqs on
 * one hash chain. A command whose rule fails gets its error and writes
 * nothing; the others go on. If the transaction itself fails (a lost race
 * with a writer that skipped the locks, which the session update detects in
 * SQL, a deadlock, a lost connection), no
 * command is answered from it: each runs again alone, with the usual
 * retries, so an answer always comes from a committed transaction (retries
 * are safe: idempotency by record_id answers from what did commit).
 *
 * Feed order: the locks come before anything that assigns a transaction id,
 * and events are inserted in command order, so (tx_id, id) follows every
 * user's order of changes, exactly as with one transaction per command.
 */
import type { Logger } from "pino";
import * as batchRepo from "../db/batch-repository.js";
import { beginPipelined, type PipelinedTransaction, type Sql } from "../db/database.js";
import type { UserHistory } from "../db/session-repository.js";
import { readClock } from "../db/locks.js";
import { classifyRequest, type AppendCommand, type EndCommand, type StartCommand } from "../domain/commands.js";
import { DomainError } from "../domain/errors.js";
import { newSessionId } from "../domain/ids.js";
import { planAppend, planEnd, planHeartbeat, planLapse, planMakeRoom, planStart, sessionAsStarted, type SessionChange } from "../domain/lifecycle.js";
import { LIFECYCLE_TYPES, type NewSessionEvent, type Session, type SessionEvent } from "../domain/session.js";
import { inDatabaseSpan } from "../observability/tracing.js";
import type { CommitReport, OnCommitted } from "./commits.js";
import { inTransaction } from "./transaction.js";

/** A mutating command as the batch runs it; `hash` is its request fingerprint (requestHash). */
export type WriteCommand =
  | { kind: "start"; command: StartCommand; hash: string }
  | { kind: "end"; command: EndCommand; hash: string }
  | { kind: "append"; command: AppendCommand; hash: string }
  | { kind: "heartbeat"; sessionId: string };

/** What each kind of command answers. */
export type WriteResult =
  | { kind: "start"; session: Session; event: SessionEvent; replayed: boolean }
  | { kind: "end"; session: Session; event: SessionEvent; replayed: boolean }
  | { kind: "append"; event: SessionEvent; replayed: boolean }
  | { kind: "heartbeat"; session: Session };

/** A command's outcome before commit: its events may still lack their feed positions. */
type Decided =
  | { kind: "start" | "end"; session: Session; event: NewSessionEvent | SessionEvent; replayed: boolean }
  | { kind: "append"; event: NewSessionEvent | SessionEvent; replayed: boolean }
  | { kind: "heartbeat"; session: Session };

/** One command's settled outcome: a result, or the error only its caller gets. */
export type Settled = { ok: true; result: WriteResult } | { ok: false; error: unknown };

function notFound(sessionId: string): DomainError {
  return new DomainError("SESSION_NOT_FOUND", "no session has this session_id", { session_id: sessionId });
}

const keyOf = (userId: string, recordId: string) => `${userId}\u0000${recordId}`;

/**
 * The state a batch's commands see: what was read under the locks, with the
 * changes of the commands decided before applied on top, and the writes
 * they add up to.
 */
class BatchState {
  /** Sessions by id, as the previous commands left them. */
  readonly sessions = new Map<string, Session>();
  /** last_seq of each session as stored: the guard of its update. */
  readonly storedSeq = new Map<string, number>();
  readonly histories = new Map<string, UserHistory>();
  /** Idempotency records by user and record_id: the event a request wrote, or its request record. */
  readonly records = new Map<string, { event: NewSessionEvent | SessionEvent | null; requestHash: string; recordId: string }>();
  /** "session.ended" events by session id. */
  readonly ends = new Map<string, NewSessionEvent | SessionEvent>();
  /** Sessions this batch creates, by id. */
  readonly created = new Set<string>();
  /** Sessions this batch changes (or creates), by id. */
  readonly dirty = new Set<string>();
  /** The events to insert, in command order. */
  readonly events: NewSessionEvent[] = [];
  /** Sessions this batch ends (open before it), as they will be. */
  readonly ended: Session[] = [];

  constructor(readonly now: Date) {}

  /** Applies a planned change: the session's new state, its event, and the event as the record of its key. */
  apply(change: SessionChange): NewSessionEvent {
    this.sessions.set(change.after.sessionId, change.after);
    this.dirty.add(change.after.sessionId);
    this.events.push(change.event);
    if (change.before.state !== "ended" && change.after.state === "ended") this.ended.push(change.after);
    this.records.set(keyOf(change.event.userId, change.event.recordId), { event: change.event, requestHash: change.event.requestHash, recordId: change.event.recordId });
    if (change.event.type === LIFECYCLE_TYPES.ended) this.ends.set(change.after.sessionId, change.event);
    return change.event;
  }

  /** Adds a session started in this batch and makes it its user's latest. */
  create(session: Session, event: NewSessionEvent): void {
    this.sessions.set(session.sessionId, session);
    this.created.add(session.sessionId);
    this.dirty.add(session.sessionId);
    this.events.push(event);
    this.records.set(keyOf(session.userId, event.recordId), { event, requestHash: event.requestHash, recordId: event.recordId });
    this.histories.set(session.userId, { lastIndex: session.sessionIndex, lastSessionId: session.sessionId, latest: session });
  }

  session(sessionId: string): Session {
    const session = this.sessions.get(sessionId);
    if (session === undefined) throw notFound(sessionId);
    return session;
  }

  record(userId: string, recordId: string) {
    return this.records.get(keyOf(userId, recordId)) ?? null;
  }
}

/**
 * Decides one command against the batch's state, in the same order of
 * checks as it has alone (idempotency first, then the lifecycle rules).
 *
 * @throws DomainError, the command's own failure; nothing was applied then.
 */
function decide(state: BatchState, write: WriteCommand, defaultIdleTimeoutMs: number): Decided {
  const { now } = state;
  switch (write.kind) {
    case "start": {
      const { command, hash } = write;
      const earlier = state.record(command.userId, command.recordId);
      if (classifyRequest(earlier, hash) === "retry") {
        const started = earlier!.event!;
        return { kind: "start", session: sessionAsStarted(state.session(started.sessionId), started), event: started, replayed: true };
      }
      const history = state.histories.get(command.userId) ?? null;
      const latest = history === null ? null : (state.sessions.get(history.lastSessionId) ?? null);
      const sessionId = newSessionId();
      const room = planMakeRoom(latest, command.conflictPolicy, sessionId, now);
      if (room !== null) state.apply(room);
      const previous = history && { sessionIndex: history.lastIndex, sessionId: history.lastSessionId };
      const planned = planStart(command, hash, previous, sessionId, now, defaultIdleTimeoutMs);
      state.create(planned.session, planned.event);
      return { kind: "start", session: planned.session, event: planned.event, replayed: false };
    }
    case "end": {
      const { command, hash } = write;
      const session = state.session(command.sessionId);
      const earlier = state.record(session.userId, command.recordId);
      if (classifyRequest(earlier, hash) === "retry" || session.state === "ended") {
        return { kind: "end", session, event: state.ends.get(session.sessionId)!, replayed: true };
      }
      const planned = planLapse(session, now) ?? planEnd(session, command, hash, now);
      const event = state.apply(planned);
      return { kind: "end", session: planned.after, event, replayed: false };
    }
    case "append": {
      const { command, hash } = write;
      const session = state.session(command.sessionId);
      const earlier = state.record(session.userId, command.recordId);
      if (classifyRequest(earlier, hash) === "retry") return { kind: "append", event: earlier!.event!, replayed: true };
      const event = state.apply(planAppend(session, command, hash, now));
      return { kind: "append", event, replayed: false };
    }
    case "heartbeat": {
      const touched = planHeartbeat(state.session(write.sessionId), now);
      state.sessions.set(touched.sessionId, touched);
      state.dirty.add(touched.sessionId);
      return { kind: "heartbeat", session: touched };
    }
  }
}

/** The session a command names, if any. */
function sessionIdOf(write: WriteCommand): string | null {
  switch (write.kind) {
    case "start":
      return null;
    case "heartbeat":
      return write.sessionId;
    default:
      return write.command.sessionId;
  }
}

/** Holds what a committed batch reports: each command's outcome, and what it wrote. */
export interface BatchOutcome {
  settled: Settled[];
  report: CommitReport;
}

/**
 * Runs a batch's commands in `tx` (see the module comment): locks, reads,
 * decides each command, writes, and commits (`tx.commit()`, sent with the
 * writes). Command failures are settled per command; anything thrown fails
 * the whole transaction, which then did not commit.
 *
 * @throws PostgresError 40001 if a session changed without its user's lock
 *   (`updateSessions`); the transaction did not commit.
 */
export async function runBatch(tx: PipelinedTransaction, writes: WriteCommand[], defaultIdleTimeoutMs: number): Promise<BatchOutcome> {
  const startUsers = [...new Set(writes.flatMap((w) => (w.kind === "start" ? [w.command.userId] : [])))];
  const sessionIds = [...new Set(writes.flatMap((w) => sessionIdOf(w) ?? []))];
  const keys: batchRepo.KeyLookup = { byUser: [], bySession: [] };
  for (const w of writes) {
    if (w.kind === "start") keys.byUser.push({ userId: w.command.userId, recordId: w.command.recordId });
    else if (w.kind !== "heartbeat") keys.bySession.push({ sessionId: w.command.sessionId, recordId: w.command.recordId });
  }
  const hasKeys = keys.byUser.length + keys.bySession.length > 0;

  // Exchange 1 (behind BEGIN): generic plans, the locks, then every read, in one pipeline.
  const [, , sessions, histories, found, now] = await Promise.all([
    batchRepo.useGenericPlans(tx),
    batchRepo.lockUsers(tx, startUsers, sessionIds),
    sessionIds.length > 0 ? batchRepo.findSessionsById(tx, sessionIds) : [],
    startUsers.length > 0 ? batchRepo.findUserHistories(tx, startUsers) : new Map<string, UserHistory>(),
    hasKeys ? batchRepo.findKeys(tx, keys) : { events: [], records: [] },
    readClock(tx),
  ]);
  const state = new BatchState(now);
  for (const [userId, history] of histories) {
    state.histories.set(userId, history);
    if (history.latest !== null) state.sessions.set(history.latest.sessionId, history.latest);
  }
  for (const session of sessions) state.sessions.set(session.sessionId, session);
  for (const record of found.records) state.records.set(keyOf(record.userId, record.recordId), { event: null, ...record });
  for (const event of found.events) state.records.set(keyOf(event.userId, event.recordId), { event, requestHash: event.requestHash, recordId: event.recordId });

  // Rare: retries and ends of ended sessions need rows the first reads did not cover.
  const replayedStarts = writes.flatMap((w) => {
    if (w.kind !== "start") return [];
    const event = state.record(w.command.userId, w.command.recordId)?.event;
    return event && !state.sessions.has(event.sessionId) ? [event.sessionId] : [];
  });
  const endedSessions = writes.flatMap((w) => {
    if (w.kind !== "end") return [];
    const session = state.sessions.get(w.command.sessionId);
    return session && (session.state === "ended" || state.record(session.userId, w.command.recordId) !== null) ? [session] : [];
  });
  if (replayedStarts.length + endedSessions.length > 0) {
    const [more, ends] = await Promise.all([
      replayedStarts.length > 0 ? batchRepo.findSessionsById(tx, replayedStarts) : [],
      endedSessions.length > 0 ? batchRepo.findEndEvents(tx, endedSessions) : [],
    ]);
    for (const session of more) state.sessions.set(session.sessionId, session);
    for (const event of ends) state.ends.set(event.sessionId, event);
  }
  for (const session of state.sessions.values()) state.storedSeq.set(session.sessionId, session.lastSeq);

  const decided: ({ ok: true; value: Decided } | { ok: false; error: unknown })[] = writes.map((write) => {
    try {
      return { ok: true, value: decide(state, write, defaultIdleTimeoutMs) };
    } catch (error) {
      return { ok: false, error };
    }
  });

  // Exchange 2: every write and COMMIT, in one pipeline. Existing sessions
  // first: an open session that a command ended leaves the user's "one open
  // session" slot before a new session takes it.
  const updates: batchRepo.SessionUpdate[] = [];
  const inserts: Session[] = [];
  for (const sessionId of state.dirty) {
    const session = state.sessions.get(sessionId)!;
    if (state.created.has(sessionId)) inserts.push(session);
    else updates.push({ session, previousSeq: state.storedSeq.get(sessionId)! });
  }
  const [, , positions] = await Promise.all([
    updates.length > 0 ? batchRepo.updateSessions(tx, updates) : undefined,
    inserts.length > 0 ? batchRepo.insertSessions(tx, inserts) : undefined,
    state.events.length > 0 ? batchRepo.insertEvents(tx, state.events) : new Map<string, SessionEvent["position"]>(),
    tx.commit(),
  ]);

  const placed = (event: NewSessionEvent | SessionEvent): SessionEvent =>
    "position" in event ? event : { ...event, position: positions.get(event.eventId)! };
  const settled = decided.map((d): Settled => {
    if (!d.ok) return d;
    const value = d.value;
    switch (value.kind) {
      case "heartbeat":
        return { ok: true, result: value };
      case "append":
        return { ok: true, result: { ...value, event: placed(value.event) } };
      default:
        return { ok: true, result: { ...value, event: placed(value.event) } };
    }
  });
  return { settled, report: { events: state.events.length, ended: state.ended } };
}

/** Configures `createWriteBatcher`. */
export interface WriteBatcherOptions {
  sql: Sql;
  log: Logger;
  defaultIdleTimeoutMs: number;
  /** Most commands per transaction (WRITE_BATCH_MAX); 1 runs each command in its own transaction. */
  maxBatch: number;
  /** How long a command waits for others before its batch starts, in microseconds (WRITE_BATCH_WAIT_US). */
  waitUs: number;
  /** Batches running at once; more commands wait and join the next batch. */
  maxInFlight: number;
  /** Called after a committed batch that wrote events, with what it wrote. */
  onEventsCommitted: OnCommitted;
}

/** Collects concurrent commands into batches; `submit` settles when the command's transaction committed (or failed). */
export interface WriteBatcher {
  submit(write: WriteCommand): Promise<WriteResult>;
}

/** The default of WRITE_BATCH_MAX. */
export const DEFAULT_WRITE_BATCH_MAX = 32;
/** The default of WRITE_BATCH_WAIT_US. */
export const DEFAULT_WRITE_BATCH_WAIT_US = 0;
/** The default of WRITE_BATCHES_IN_FLIGHT. */
export const DEFAULT_WRITE_BATCHES_IN_FLIGHT = 4;

interface Pending {
  write: WriteCommand;
  resolve: (result: WriteResult) => void;
  reject: (error: unknown) => void;
}

/**
 * Creates the replica's batcher. A command joins the queue; a batch starts
 * when `waitUs` has passed since the first queued command (0: on the next
 * turn of the event loop, taking whatever arrived together), at once when
 * `maxBatch` commands are queued, and never while `maxInFlight` batches
 * run: then commands queue up and the next batch takes them all (up to
 * `maxBatch`). So an idle replica adds no wait, and a busy one batches more.
 */
export function createWriteBatcher(options: WriteBatcherOptions): WriteBatcher {
  const { sql, log, defaultIdleTimeoutMs, maxBatch, waitUs, maxInFlight, onEventsCommitted } = options;
  const queue: Pending[] = [];
  let inFlight = 0;
  let timer: NodeJS.Timeout | NodeJS.Immediate | null = null;

  /** Runs one transaction for `batch`, retried whole while it holds one command (as before batching). */
  async function runAlone(item: Pending): Promise<void> {
    try {
      const outcome = await inTransaction(sql, log, (tx) => runBatch(tx, [item.write], defaultIdleTimeoutMs));
      if (outcome.report.events > 0) onEventsCommitted(outcome.report);
      settle(item, outcome.settled[0]!);
    } catch (error) {
      item.reject(error);
    }
  }

  async function runMany(batch: Pending[]): Promise<void> {
    let outcome: BatchOutcome;
    try {
      // Traced as one span, under the RPC whose call opened the batch (the timer runs in its context).
      outcome = (await inDatabaseSpan("db.transaction", () =>
        beginPipelined(sql, (tx) => runBatch(tx, batch.map((item) => item.write), defaultIdleTimeoutMs)),
      ));
    } catch (error) {
      // Nothing of this transaction committed: each command runs again alone, with its own retries.
      log.debug({ err: error, commands: batch.length }, "write batch failed; running its commands one by one");
      await Promise.all(batch.map(runAlone));
      return;
    }
    if (outcome.report.events > 0) onEventsCommitted(outcome.report);
    batch.forEach((item, i) => settle(item, outcome.settled[i]!));
  }

  function settle(item: Pending, settled: Settled): void {
    if (settled.ok) item.resolve(settled.result);
    else item.reject(settled.error);
  }

  function flush(): void {
    timer = null;
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = queue.splice(0, maxBatch);
      inFlight++;
      void (batch.length === 1 ? runAlone(batch[0]!) : runMany(batch)).finally(() => {
        inFlight--;
        // Commands that queued meanwhile have waited long enough.
        if (queue.length > 0 && timer === null) flush();
      });
    }
  }

  function schedule(): void {
    if (inFlight >= maxInFlight) return; // a finishing batch flushes
    if (queue.length >= maxBatch) {
      if (timer !== null) clearTimer();
      flush();
      return;
    }
    if (timer !== null) return;
    timer = waitUs === 0 ? setImmediate(flush) : setTimeout(flush, Math.max(1, Math.round(waitUs / 1000)));
  }

  function clearTimer(): void {
    if (timer === null) return;
    if (waitUs === 0) clearImmediate(timer as NodeJS.Immediate);
    else clearTimeout(timer as NodeJS.Timeout);
    timer = null;
  }

  return {
    submit(write: WriteCommand): Promise<WriteResult> {
      return new Promise<WriteResult>((resolve, reject) => {
        const item = { write, resolve, reject };
        if (maxBatch === 1 && inFlight < maxInFlight) {
          inFlight++;
          void runAlone(item).finally(() => {
            inFlight--;
            if (queue.length > 0 && timer === null) flush();
          });
          return;
        }
        queue.push(item);
        schedule();
      });
    },
  };
}
