/**
 * The client, independent of the runtime: `index.ts` (Node, connect-node)
 * and `browser.ts` (connect-web) pass it the transports they can build.
 *
 * Every method retries as `retry.ts` says (UNAVAILABLE, DEADLINE_EXCEEDED,
 * connection errors; never another code), and every mutating method draws
 * its `record_id` (a ULID) once per call, before the first attempt, so all
 * attempts of one call carry the same one and the service writes it at most
 * once (AIP-155; README "Calling it", Idempotency). Errors are
 * `SessionManagerError`s.
 */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { credentialInterceptor, type Credential } from "./credential.js";
import { ulid } from "ulid";
import {
  SessionManagerService,
  type AppendSessionEventRequestSchema,
  type AppendSessionEventResponse,
  type EndSessionRequestSchema,
  type EndSessionResponse,
  type GetSessionRequestSchema,
  type HeartbeatSessionRequestSchema,
  type ListSessionEventsRequestSchema,
  type ListSessionEventsResponse,
  type ListSessionsRequestSchema,
  type ListSessionsResponse,
  type PauseSessionRequestSchema,
  type ResumeSessionRequestSchema,
  type StartSessionRequestSchema,
  type StartSessionResponse,
  type UpdateSessionRequestSchema,
  type WatchSessionEventsResponse,
} from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { Session, SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import type { SessionManagerError } from "./errors.js";
import { retryPolicy, withRetries, type RetryOptions, type RetryPolicy } from "./retry.js";
import { openSessionHandle, type OpenSessionOptions, type SessionHandle } from "./session.js";
import { watchFeed, type WatchOptions, type WatchStream } from "./watch.js";

/** The wire protocols: gRPC (HTTP/2; Node only), Connect and gRPC-Web (HTTP/1.1 in Node, fetch in browsers). */
export type TransportKind = "grpc" | "connect" | "grpc-web";

/** Builds a transport of `kind` for `baseUrl` running `interceptors`; each runtime entry point supplies one. */
export type TransportFactory = (kind: TransportKind, baseUrl: string, interceptors: Interceptor[]) => Transport;

/** Configures `createSessionManagerClient`. */
export interface SessionManagerClientOptions {
  /** The service's URL, e.g. "http://localhost:8080". */
  baseUrl: string;
  /** The protocol. Default "connect". */
  transport?: TransportKind;
  /** The credential; see `Credential`. */
  credential?: Credential;
  /** Retries of unary calls; see `RetryOptions`. */
  retry?: RetryOptions;
  /** More interceptors, run after the one that sets the credential. */
  interceptors?: Interceptor[];
  /** The `source` of events appended through session handles unless `openSession` names one. Default "session-manager-client". */
  source?: string;
  /** Called before each retry of a unary call (for logs and metrics). */
  onRetry?: (info: { method: string; error: SessionManagerError; attempt: number; delayMs: number }) => void;
}

/** Per-call options of the unary methods. */
export interface CallOpts {
  /** Aborts the call, its retries included (the error is then CANCELED). */
  signal?: AbortSignal;
  /** More request headers. */
  headers?: CallOptions["headers"];
}

/** A request of a mutating RPC whose `record_id` the client draws unless given (give one to span process restarts). */
export type Mutation<T> = Omit<T, "recordId" | "$typeName"> & { recordId?: string };
type Init<S extends DescMessage> = MessageInitShape<S>;

/** The client: the RPCs with retries, sessions with their own heartbeats, and a resuming watch. */
export interface SessionManagerClient {
  /** The generated connect-es client on the same transport and credential, without retries or record ids. */
  readonly rpc: Client<typeof SessionManagerService>;
  startSession(request: Mutation<Init<typeof StartSessionRequestSchema>>, options?: CallOpts): Promise<StartSessionResponse>;
  endSession(request: Mutation<Init<typeof EndSessionRequestSchema>>, options?: CallOpts): Promise<EndSessionResponse>;
  appendSessionEvent(request: Mutation<Init<typeof AppendSessionEventRequestSchema>>, options?: CallOpts): Promise<AppendSessionEventResponse>;
  pauseSession(request: Mutation<Init<typeof PauseSessionRequestSchema>>, options?: CallOpts): Promise<Session>;
  resumeSession(request: Mutation<Init<typeof ResumeSessionRequestSchema>>, options?: CallOpts): Promise<Session>;
  updateSession(request: Mutation<Init<typeof UpdateSessionRequestSchema>>, options?: CallOpts): Promise<Session>;
  heartbeatSession(request: Init<typeof HeartbeatSessionRequestSchema>, options?: CallOpts): Promise<Session>;
  getSession(request: Init<typeof GetSessionRequestSchema>, options?: CallOpts): Promise<Session>;
  listSessions(request: Init<typeof ListSessionsRequestSchema>, options?: CallOpts): Promise<ListSessionsResponse>;
  listSessionEvents(request: Init<typeof ListSessionEventsRequestSchema>, options?: CallOpts): Promise<ListSessionEventsResponse>;
  /** Starts a session and returns a handle that heartbeats it and ends it on dispose; see `SessionHandle`. */
  openSession(options: OpenSessionOptions): Promise<SessionHandle>;
  /** Opens a session, runs `body` with it, and ends the session when `body` returns or throws; returns what `body` returns. */
  withSession<T>(options: OpenSessionOptions, body: (session: SessionHandle) => Promise<T>): Promise<T>;
  /** Follows WatchSessionEvents, resuming across disconnects; see `WatchOptions`. */
  watch(options: WatchOptions & { frames: true }): WatchStream<WatchSessionEventsResponse>;
  watch(options?: WatchOptions & { frames?: false }): WatchStream<SessionEvent>;
}

/** Creates a client with transports from `factory`; the runtime entry points wrap this. */
export function createClientWith(factory: TransportFactory, options: SessionManagerClientOptions): SessionManagerClient {
  const interceptors = [credentialInterceptor(options.credential), ...(options.interceptors ?? [])];
  const kind = options.transport ?? "connect";
  if (kind !== "grpc" && kind !== "connect" && kind !== "grpc-web") throw new TypeError(`transport: expected grpc, connect or grpc-web, got ${String(kind)}`);
  const rpc = createClient(SessionManagerService, factory(kind, options.baseUrl, interceptors));
  const policy: RetryPolicy = retryPolicy(options.retry);

  function call<T>(method: string, run: (callOptions: CallOptions) => Promise<T>, opts: CallOpts = {}): Promise<T> {
    return withRetries(
      () => run({ signal: opts.signal, headers: opts.headers, timeoutMs: policy.attemptTimeoutMs > 0 ? policy.attemptTimeoutMs : undefined }),
      policy,
      opts.signal,
      options.onRetry === undefined ? undefined : (error, attempt, delayMs) => options.onRetry!({ method, error, attempt, delayMs }),
    );
  }
  // The record id is drawn here, once per call, before the first attempt.
  const withRecordId = <T extends { recordId?: string }>(request: T) => ({ ...request, recordId: request.recordId ?? ulid() });

  const client: SessionManagerClient = {
    rpc,
    startSession: (request, opts) => {
      const req = withRecordId(request);
      return call("StartSession", (o) => rpc.startSession(req, o), opts);
    },
    endSession: (request, opts) => {
      const req = withRecordId(request);
      return call("EndSession", (o) => rpc.endSession(req, o), opts);
    },
    appendSessionEvent: (request, opts) => {
      const req = withRecordId(request);
      return call("AppendSessionEvent", (o) => rpc.appendSessionEvent(req, o), opts);
    },
    pauseSession: (request, opts) => {
      const req = withRecordId(request);
      return call("PauseSession", async (o) => (await rpc.pauseSession(req, o)).session!, opts);
    },
    resumeSession: (request, opts) => {
      const req = withRecordId(request);
      return call("ResumeSession", async (o) => (await rpc.resumeSession(req, o)).session!, opts);
    },
    updateSession: (request, opts) => {
      const req = withRecordId(request);
      return call("UpdateSession", async (o) => (await rpc.updateSession(req, o)).session!, opts);
    },
    heartbeatSession: (request, opts) => call("HeartbeatSession", async (o) => (await rpc.heartbeatSession(request, o)).session!, opts),
    getSession: (request, opts) => call("GetSession", async (o) => (await rpc.getSession(request, o)).session!, opts),
    listSessions: (request, opts) => call("ListSessions", (o) => rpc.listSessions(request, o), opts),
    listSessionEvents: (request, opts) => call("ListSessionEvents", (o) => rpc.listSessionEvents(request, o), opts),
    openSession: (sessionOptions) => openSessionHandle(client, { source: options.source ?? "session-manager-client", ...sessionOptions }),
    async withSession(sessionOptions, body) {
      // Ends the session however the body leaves; if ending fails after the
      // body threw, the SuppressedError carries both.
      await using session = await client.openSession(sessionOptions);
      return await body(session);
    },
    watch: ((watchOptions: WatchOptions = {}) =>
      watchFeed(rpc, { ...watchOptions, refreshable: typeof options.credential === "function" })) as SessionManagerClient["watch"],
  };
  return client;
}
