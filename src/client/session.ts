/**
 * A session handle: `client.openSession(...)` starts a session and returns
 * one. It heartbeats the session in the background (every third of its idle
 * timeout, counted from the last activity it sent), stops heartbeating while
 * the session is paused, and ends the session when disposed (`await using`,
 * `close()`, or `withSession` when its body returns or throws), exactly once:
 * `end()` is memoized and its record_id is reused across retries, and
 * EndSession on an ENDED session returns the original end (proto,
 * EndSession).
 *
 * If the session ends under the handle (idle timeout, max duration,
 * superseded by another StartSession, ended by another client), the next
 * heartbeat or call gets SESSION_ENDED (or SESSION_NOT_FOUND); the handle
 * then stops heartbeating, asks EndSession for the end (which records a
 * lapse that no sweeper recorded yet, and never ends anything twice), and
 * reports it: `ended` turns true, `endInfo` holds it, `signal` aborts with a
 * `SessionEndedError`, and `onEnded` is called.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { ulid } from "ulid";
import { ConflictPolicy } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { EndReason, SessionState, type Session, type SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import type { SessionManagerClient } from "./core.js";
import { SessionManagerError } from "./errors.js";

/** Configures `openSession`. Times are in ms. */
export interface OpenSessionOptions {
  /** The user to start the session for. */
  userId: string;
  /** The idle timeout, 1_000 to 604_800_000 ms (whole ms; sent as a Duration); default the server's SESSION_T_IDLE_MS. */
  idleTimeoutMs?: number;
  /** The longest the session may last, 1_000 ms to 30 days; default no limit. */
  maxDurationMs?: number;
  performerId?: string;
  metadata?: JsonObject;
  isTrainingData?: boolean;
  /** "reject" (default): fail with ACTIVE_SESSION_EXISTS if the user has an open session; "supersede": end it (END_REASON_SUPERSEDED). */
  conflictPolicy?: "reject" | "supersede";
  /** When the interaction started, as the caller saw it; default the server's receive time. */
  eventTime?: Date;
  /** The StartSession record_id; default a ULID drawn once. */
  recordId?: string;
  /** The `source` of events appended through the handle; default the client's `source`. */
  source?: string;
  /** The heartbeat period in ms; default a third of the session's idle timeout (as the server returned it). */
  heartbeatIntervalMs?: number;
  /** Called once when the handle learns that the session ended, whoever ended it. */
  onEnded?: (end: SessionEnd) => void;
  /** Called when a background heartbeat fails for another reason than the session's end or pause (after the client's retries); the next one is still sent. */
  onHeartbeatError?: (error: SessionManagerError) => void;
  /** Aborts the StartSession call. */
  signal?: AbortSignal;
}

/** How a session ended, as the handle learned it. */
export interface SessionEnd {
  /** The session as EndSession returned it (state ENDED), or the last one the handle saw if EndSession could not be reached. */
  session: Session;
  /** The "session.ended" event, or undefined if EndSession could not be reached. */
  event: SessionEvent | undefined;
  /** END_REASON_CLIENT, IDLE_TIMEOUT, SUPERSEDED or MAX_DURATION; UNSPECIFIED if unknown. */
  endReason: EndReason;
  /** True when this handle's own EndSession ended it. */
  byThisHandle: boolean;
}

/** The reason `SessionHandle.signal` aborts with. */
export class SessionEndedError extends Error {
  override readonly name = "SessionEndedError";
  constructor(readonly end: SessionEnd) {
    super(`session ${end.session.sessionId} ended (${EndReason[end.endReason] ?? end.endReason})`);
  }
}

/** Per-call options of the handle's methods. */
export interface AppendOptions {
  /** When it happened, as the caller saw it; default the server's receive time. */
  eventTime?: Date;
  performerId?: string;
  /** Overrides the handle's `source`. */
  source?: string;
  /** The record_id; default a ULID drawn once for this call. */
  recordId?: string;
  signal?: AbortSignal;
}

/** A started session; see the module comment. Dispose it (`await using`) or call `close()`. */
export class SessionHandle implements AsyncDisposable {
  readonly #client: SessionManagerClient;
  readonly #options: OpenSessionOptions & { source: string };
  readonly #abort = new AbortController();
  #session: Session;
  #paused: boolean;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ending: Promise<SessionEnd> | null = null;
  #end: SessionEnd | null = null;

  /** Use `client.openSession`. */
  constructor(client: SessionManagerClient, options: OpenSessionOptions & { source: string }, session: Session) {
    this.#client = client;
    this.#options = options;
    this.#session = session;
    this.#paused = session.state === SessionState.PAUSED;
    this.#schedule();
  }

  /** The session id ("sess_" + ULID). */
  get sessionId(): string {
    return this.#session.sessionId;
  }

  /** The session as of the last response the handle received. */
  get session(): Session {
    return this.#session;
  }

  /** True once the handle knows the session ended (by `end()`/dispose, or under it). */
  get ended(): boolean {
    return this.#end !== null;
  }

  /** How the session ended, once `ended`. */
  get endInfo(): SessionEnd | null {
    return this.#end;
  }

  /** Aborts (reason: a `SessionEndedError`) when the session ends; pass it to work that must stop with the session. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** True while the handle knows the session is paused (no heartbeats are sent). */
  get paused(): boolean {
    return this.#paused;
  }

  /** The heartbeat period in ms. */
  get heartbeatIntervalMs(): number {
    if (this.#options.heartbeatIntervalMs !== undefined) return this.#options.heartbeatIntervalMs;
    const idle = this.#session.idleTimeout === undefined ? 0 : durationMs(this.#session.idleTimeout);
    return Math.max(100, Math.floor(idle / 3));
  }

  /**
   * Appends an event (AppendSessionEvent; counts as activity) and returns it
   * with its `seq` and `cursor`. Errors as the RPC's: SESSION_ENDED (the
   * handle then reports the end), SESSION_PAUSED, RESERVED_EVENT_TYPE, ...
   */
  async append(type: string, payload?: JsonObject, options: AppendOptions = {}): Promise<SessionEvent> {
    const response = await this.#guard(() =>
      this.#client.appendSessionEvent(
        {
          sessionId: this.sessionId,
          type,
          payload,
          source: options.source ?? this.#options.source,
          performerId: options.performerId ?? "",
          eventTime: options.eventTime === undefined ? undefined : timestampFromDate(options.eventTime),
          recordId: options.recordId,
        },
        { signal: options.signal },
      ),
    );
    this.#paused = false; // an append succeeds only on an ACTIVE session (another client may have resumed it)
    this.#schedule(); // the append was activity: the next heartbeat is due a period from now
    return response.event!;
  }

  /** Sends one heartbeat now (HeartbeatSession) and returns the session with its new `expireTime`. */
  async heartbeat(): Promise<Session> {
    const session = await this.#guard(() => this.#client.heartbeatSession({ sessionId: this.sessionId }));
    this.#session = session;
    this.#schedule();
    return session;
  }

  /** Pauses the session (its idle clock stops) and the handle's heartbeats. */
  async pause(options: { recordId?: string; signal?: AbortSignal } = {}): Promise<Session> {
    const session = await this.#guard(() => this.#client.pauseSession({ sessionId: this.sessionId, recordId: options.recordId }, { signal: options.signal }));
    this.#session = session;
    this.#paused = true;
    this.#stopTimer();
    return session;
  }

  /** Resumes the session (its idle clock restarts now) and the handle's heartbeats. */
  async resume(options: { recordId?: string; signal?: AbortSignal } = {}): Promise<Session> {
    const session = await this.#guard(() => this.#client.resumeSession({ sessionId: this.sessionId, recordId: options.recordId }, { signal: options.signal }));
    this.#session = session;
    this.#paused = false;
    this.#schedule();
    return session;
  }

  /**
   * Replaces `metadata` and/or sets `isTrainingData` (UpdateSession; only the
   * fields given are in the update mask; allowed after the end too).
   */
  async update(fields: { metadata?: JsonObject; isTrainingData?: boolean }, options: { recordId?: string; signal?: AbortSignal } = {}): Promise<Session> {
    const paths = [...(fields.metadata === undefined ? [] : ["metadata"]), ...(fields.isTrainingData === undefined ? [] : ["is_training_data"])];
    if (paths.length === 0) throw new TypeError("update: give metadata and/or isTrainingData");
    const session = await this.#client.updateSession(
      {
        session: { sessionId: this.sessionId, metadata: fields.metadata, isTrainingData: fields.isTrainingData ?? false },
        updateMask: { paths },
        recordId: options.recordId,
      },
      { signal: options.signal },
    );
    this.#session = session;
    return session;
  }

  /**
   * Ends the session (EndSession) once: every later call, dispose included,
   * returns the same result. If the call fails (after retries), the next
   * `end()` tries again with the same record_id.
   */
  end(options: { performerId?: string; eventTime?: Date } = {}): Promise<SessionEnd> {
    if (this.#ending !== null) return this.#ending;
    this.#stopTimer();
    const recordId = ulid();
    const ending = this.#client
      .endSession({
        sessionId: this.sessionId,
        recordId,
        performerId: options.performerId ?? "",
        eventTime: options.eventTime === undefined ? undefined : timestampFromDate(options.eventTime),
      })
      .then((response) => {
        const end: SessionEnd = {
          session: response.session!,
          event: response.event,
          endReason: response.session!.endReason,
          byThisHandle: response.event?.recordId === recordId,
        };
        this.#session = end.session;
        this.#finish(end);
        return end;
      });
    this.#ending = ending;
    ending.catch(() => {
      if (this.#ending === ending) this.#ending = null;
    });
    return ending;
  }

  /** Stops heartbeating and ends the session (see `end()`); resolves when it has ended. */
  async close(): Promise<void> {
    await this.end();
  }

  /** `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Runs a call on the session; on SESSION_ENDED or SESSION_NOT_FOUND learns the end, on SESSION_PAUSED the pause; rethrows. */
  async #guard<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (thrown) {
      const error = SessionManagerError.from(thrown);
      if (error.reason === "SESSION_ENDED" || (error.code === Code.NotFound && error.reason === "SESSION_NOT_FOUND")) {
        await this.#endedUnder();
      } else if (error.reason === "SESSION_PAUSED") {
        this.#paused = true;
        this.#stopTimer();
      }
      throw error;
    }
  }

  /** The session ended under the handle: stop heartbeats, learn how from EndSession, report. */
  async #endedUnder(): Promise<void> {
    this.#stopTimer();
    if (this.#end !== null) return;
    try {
      await this.end();
    } catch {
      this.#finish({ session: this.#session, event: undefined, endReason: EndReason.UNSPECIFIED, byThisHandle: false });
    }
  }

  #finish(end: SessionEnd): void {
    if (this.#end !== null) return;
    this.#end = end;
    this.#stopTimer();
    this.#abort.abort(new SessionEndedError(end));
    this.#options.onEnded?.(end);
  }

  #stopTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** (Re)arms the heartbeat timer a period from now, unless the session is paused, ending or ended. */
  #schedule(): void {
    this.#stopTimer();
    if (this.#paused || this.#ending !== null || this.#end !== null) return;
    this.#timer = setTimeout(() => void this.#beat(), this.heartbeatIntervalMs);
    // The timer alone does not keep a process alive.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async #beat(): Promise<void> {
    this.#timer = undefined;
    if (this.#paused || this.#ending !== null || this.#end !== null) return;
    try {
      await this.heartbeat();
    } catch (thrown) {
      const error = SessionManagerError.from(thrown);
      if (this.#end === null && !this.#paused && error.reason !== "SESSION_ENDED") {
        this.#options.onHeartbeatError?.(error);
        if (this.#timer === undefined) this.#schedule();
      }
    }
  }
}

/** Starts the session (StartSession, with retries) and returns its handle. */
export async function openSessionHandle(client: SessionManagerClient, options: OpenSessionOptions & { source: string }): Promise<SessionHandle> {
  const response = await client.startSession(
    {
      userId: options.userId,
      recordId: options.recordId,
      idleTimeout: options.idleTimeoutMs === undefined ? undefined : durationFromMs(options.idleTimeoutMs),
      maxDuration: options.maxDurationMs === undefined ? undefined : durationFromMs(options.maxDurationMs),
      performerId: options.performerId ?? "",
      metadata: options.metadata,
      isTrainingData: options.isTrainingData ?? false,
      conflictPolicy: options.conflictPolicy === "supersede" ? ConflictPolicy.SUPERSEDE : ConflictPolicy.REJECT,
      eventTime: options.eventTime === undefined ? undefined : timestampFromDate(options.eventTime),
    },
    { signal: options.signal },
  );
  return new SessionHandle(client, options, response.session!);
}
