/**
 * `client.watch(...)`: WatchSessionEvents that resumes by itself.
 *
 * It remembers the cursor of the last frame it received, of ANY kind (an
 * event, `caught_up`, or a heartbeat, whose cursor moves past events the
 * filters skipped), and after a disconnect, a replica restart or any error
 * retrying can fix, reconnects with backoff and resumes strictly after that
 * cursor. The service guarantees that every matching event after the cursor
 * arrives exactly once, in order, on any replica (README, "The event feed"),
 * so what the iterator yields has no gap and no repeat across reconnects.
 *
 * It stops (the iterator throws a `SessionManagerError`) on the codes that
 * retrying cannot fix: INVALID_ARGUMENT (e.g. INVALID_CURSOR), OUT_OF_RANGE
 * (CURSOR_EXPIRED, with `metadata.earliest_cursor`), NOT_FOUND,
 * FAILED_PRECONDITION, ALREADY_EXISTS, PERMISSION_DENIED, UNIMPLEMENTED, and
 * UNAUTHENTICATED, except that with a credential function an
 * UNAUTHENTICATED stream (e.g. its JWT expired) is resumed at once with a
 * fresh token (`refresh: true`), once per failure: a second UNAUTHENTICATED
 * before any frame arrives is final. RESOURCE_EXHAUSTED (TOO_MANY_STREAMS)
 * waits at least its RetryInfo delay. Every other code, and a stream that
 * ends without an error, is retried forever.
 */
import { Code, createContextValues, type Client } from "@connectrpc/connect";
import type { SessionManagerService, WatchSessionEventsResponse } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import { REFRESH_CREDENTIAL } from "./credential.js";
import { SessionManagerError } from "./errors.js";
import { backoffDelay, pause } from "./retry.js";

/** Configures `client.watch`. The filters are those of WatchSessionEventsRequest and combine with AND. */
export interface WatchOptions {
  /** Only this user's events (a JWT caller must give its own user). */
  userId?: string;
  /** Only this session's events. */
  sessionId?: string;
  /** Only these types (at most 32); "care.*" matches a prefix. */
  types?: string[];
  /** Start strictly after this cursor (from any frame of an earlier stream). Takes precedence over `fromBeginning`. */
  after?: string;
  /** Start with the oldest retained event; without it and without `after`, the live head. */
  fromBeginning?: boolean;
  /** Yield every frame (`WatchSessionEventsResponse`: event, caughtUp, heartbeat) instead of only the events. */
  frames?: boolean;
  /** Stops the watch: the iteration then ends without an error. Breaking out of `for await` stops it too. */
  signal?: AbortSignal;
  /** Reconnect backoff in ms: each wait is drawn between half and all of a step that doubles from `initialMs` to `maxMs`, and starts over after a frame arrives. Default 100 and 5_000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Called before each reconnect with the error that ended the stream (null if it ended without one) and the wait in ms. */
  onReconnect?: (error: SessionManagerError | null, delayMs: number) => void;
}

/** What `client.watch` returns: iterate it once with `for await`. */
export interface WatchStream<T> extends AsyncIterable<T> {
  /** The cursor of the last frame received ("" before the first, or `after` if given): resume a later watch with `after: stream.cursor`. */
  readonly cursor: string;
}

/** The codes retrying cannot fix (UNAUTHENTICATED is handled apart: see the module comment). */
const FINAL_CODES = new Set([
  Code.InvalidArgument,
  Code.OutOfRange,
  Code.NotFound,
  Code.FailedPrecondition,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
]);

/** Returns the resume cursor a frame carries, or "" if none. */
export function frameCursor(frame: WatchSessionEventsResponse): string {
  switch (frame.frame.case) {
    case "event":
    case "caughtUp":
    case "heartbeat":
      return frame.frame.value.cursor;
    default:
      return "";
  }
}

/** Implements `client.watch`; `refreshable` tells whether the credential is a function. */
export function watchFeed(
  rpc: Client<typeof SessionManagerService>,
  options: WatchOptions & { refreshable: boolean },
): WatchStream<SessionEvent> | WatchStream<WatchSessionEventsResponse> {
  const state = { cursor: options.after ?? "", started: false };
  const initialMs = options.backoff?.initialMs ?? 100;
  const maxMs = options.backoff?.maxMs ?? 5_000;

  async function* run(): AsyncGenerator<SessionEvent | WatchSessionEventsResponse> {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted === true) stop.abort();
    let failures = 0;
    let refreshed = false; // a fresh token was asked for since the last frame
    try {
      while (!stop.signal.aborted) {
        let error: SessionManagerError | null = null;
        try {
          const request = {
            userId: options.userId ?? "",
            sessionId: options.sessionId ?? "",
            types: options.types ?? [],
            afterCursor: state.cursor,
            // Once any frame gave a cursor, resuming after it wins over from_beginning and the head.
            fromBeginning: state.cursor === "" && options.fromBeginning === true,
          };
          const contextValues = createContextValues().set(REFRESH_CREDENTIAL, refreshed);
          for await (const frame of rpc.watchSessionEvents(request, { signal: stop.signal, contextValues })) {
            const cursor = frameCursor(frame);
            if (cursor !== "") state.cursor = cursor;
            failures = 0;
            refreshed = false;
            if (options.frames === true) yield frame;
            else if (frame.frame.case === "event") yield frame.frame.value;
          }
        } catch (thrown) {
          if (stop.signal.aborted) return;
          error = SessionManagerError.from(thrown);
          if (error.code === Code.Unauthenticated && options.refreshable && !refreshed) {
            refreshed = true;
            options.onReconnect?.(error, 0);
            continue;
          }
          if (FINAL_CODES.has(error.code)) throw error;
        }
        if (stop.signal.aborted) return;
        failures += 1;
        const delayMs = Math.max(backoffDelay(failures, initialMs, maxMs), error?.retryDelayMs ?? 0);
        options.onReconnect?.(error, delayMs);
        await pause(delayMs, stop.signal);
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      stop.abort();
    }
  }

  return {
    get cursor() {
      return state.cursor;
    },
    [Symbol.asyncIterator]() {
      if (state.started) throw new Error("watch: iterate a WatchStream once; start another watch with after: stream.cursor");
      state.started = true;
      return run();
    },
  } as WatchStream<SessionEvent>;
}
