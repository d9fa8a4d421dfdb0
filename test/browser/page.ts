/**
 * Browser side of connect-web.test.ts: bundled by esbuild and loaded by a
 * page on another origin than the service. It exposes two functions on
 * `window` that the test calls through Playwright's `page.evaluate`, and
 * returns plain JSON (no bigint, no class instances) so the test can assert
 * on it. Written without DOM types: the project's tsconfig has no "dom" lib.
 */
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";

export type TransportName = "connect" | "grpc-web";

/** What the page passes per run: the service's URL and ids unique to the run. */
export interface RunInput {
  baseUrl: string;
  transport: TransportName;
  /** The JWT the page sends as `authorization: Bearer` (scoped to `userId`). */
  token: string;
  userId: string;
  startRecordId: string;
  appendRecordId: string;
  unknownSessionId: string;
}

export interface WatchFrame {
  kind: "event" | "caughtUp" | "heartbeat";
  cursor: string;
  seq?: string;
  type?: string;
  sessionId?: string;
}

export interface RunSummary {
  origin: string;
  transport: TransportName;
  started: { sessionId: string; userId: string; state: number; eventSeq: string; eventType: string };
  appended: { seq: string; type: string; payload: unknown };
  got: { sessionId: string; lastSeq: string; state: number; metadata: unknown };
  error: { code: string; reason: string | undefined; domain: string | undefined };
  /** The same GetSession without the token. */
  anonymous: { code: string; reason: string | undefined; domain: string | undefined };
  watch: { frames: WatchFrame[]; endCode: string; timedOut: boolean };
}

export interface DeniedSummary {
  origin: string;
  transport: TransportName;
  resolved: boolean;
  code: string;
  message: string;
  causeName: string | undefined;
  causeMessage: string | undefined;
}

const WATCH_TIMEOUT_MS = 10_000;

/** A client that sends `token` (when given) through an interceptor, as the README shows. */
function client(baseUrl: string, transport: TransportName, token?: string): Client<typeof SessionManagerService> {
  const interceptors: Interceptor[] =
    token === undefined
      ? []
      : [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ];
  const t: Transport =
    transport === "connect"
      ? createConnectTransport({ baseUrl, useBinaryFormat: false, interceptors })
      : createGrpcWebTransport({ baseUrl, interceptors });
  return createClient(SessionManagerService, t);
}

async function errorOf(call: Promise<unknown>): Promise<RunSummary["error"]> {
  try {
    await call;
    return { code: "none", reason: undefined, domain: undefined };
  } catch (e) {
    const ce = ConnectError.from(e);
    const info = ce.findDetails(ErrorInfoSchema)[0];
    return { code: Code[ce.code], reason: info?.reason, domain: info?.domain };
  }
}

function pageOrigin(): string {
  return (globalThis as unknown as { location: { origin: string } }).location.origin;
}

async function run(input: RunInput): Promise<RunSummary> {
  const c = client(input.baseUrl, input.transport, input.token);

  const started = await c.startSession({
    recordId: input.startRecordId,
    userId: input.userId,
    metadata: { channel: "browser" },
  });
  const session = started.session!;

  const appended = await c.appendSessionEvent({
    recordId: input.appendRecordId,
    sessionId: session.sessionId,
    type: "care.input.received",
    source: "browser-test",
    payload: { text: "hello from the browser" },
  });

  const got = await c.getSession({ sessionId: session.sessionId });

  const error = await errorOf(c.heartbeatSession({ sessionId: input.unknownSessionId }));
  const anonymous = await errorOf(client(input.baseUrl, input.transport).getSession({ sessionId: session.sessionId }));

  // Watch the user's feed from the beginning until both events, caught_up and a heartbeat were seen.
  const frames: WatchFrame[] = [];
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, WATCH_TIMEOUT_MS);
  let endCode = "completed";
  try {
    for await (const res of c.watchSessionEvents({ userId: input.userId, fromBeginning: true }, { signal: controller.signal })) {
      const f = res.frame;
      if (f.case === "event") {
        frames.push({ kind: "event", cursor: f.value.cursor, seq: f.value.seq.toString(), type: f.value.type, sessionId: f.value.sessionId });
      } else if (f.case === "caughtUp") {
        frames.push({ kind: "caughtUp", cursor: f.value.cursor });
      } else if (f.case === "heartbeat") {
        frames.push({ kind: "heartbeat", cursor: f.value.cursor });
      }
      const events = frames.filter((x) => x.kind === "event").length;
      const caughtUp = frames.some((x) => x.kind === "caughtUp");
      const heartbeat = frames.some((x) => x.kind === "heartbeat");
      if (events >= 2 && caughtUp && heartbeat) controller.abort();
    }
  } catch (e) {
    endCode = Code[ConnectError.from(e).code];
  } finally {
    clearTimeout(timer);
  }

  return {
    origin: pageOrigin(),
    transport: input.transport,
    started: {
      sessionId: session.sessionId,
      userId: session.userId,
      state: session.state,
      eventSeq: started.event!.seq.toString(),
      eventType: started.event!.type,
    },
    appended: { seq: appended.event!.seq.toString(), type: appended.event!.type, payload: appended.event!.payload },
    got: { sessionId: got.session!.sessionId, lastSeq: got.session!.lastSeq.toString(), state: got.session!.state, metadata: got.session!.metadata },
    error,
    anonymous,
    watch: { frames, endCode, timedOut },
  };
}

/** One StartSession that CORS should stop; reports how the call failed. */
async function denied(input: Pick<RunInput, "baseUrl" | "transport" | "userId" | "startRecordId">): Promise<DeniedSummary> {
  const c = client(input.baseUrl, input.transport);
  try {
    await c.startSession({ recordId: input.startRecordId, userId: input.userId });
    return { origin: pageOrigin(), transport: input.transport, resolved: true, code: "ok", message: "", causeName: undefined, causeMessage: undefined };
  } catch (e) {
    const ce = ConnectError.from(e);
    const cause = ce.cause instanceof Error ? ce.cause : undefined;
    return {
      origin: pageOrigin(),
      transport: input.transport,
      resolved: false,
      code: Code[ce.code],
      message: ce.rawMessage,
      causeName: cause?.name,
      causeMessage: cause?.message,
    };
  }
}

export interface SmokeApi {
  run: typeof run;
  denied: typeof denied;
}

(globalThis as unknown as { sessionManagerSmoke: SmokeApi }).sessionManagerSmoke = { run, denied };
