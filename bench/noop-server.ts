/**
 * Framework floor for bench/lifecycle.ts: serves SessionManagerService through
 * the SAME one-port server (src/transport/server.ts) and the same interceptors
 * as the service (access log with a silent logger, protovalidate), but its
 * handlers return fixed messages and never touch a database. Whatever this
 * serves per second is the most the service could serve on this transport.
 *
 * The fixed responses are built once, through the service's own converters,
 * from a realistic session and event, so they encode to the same shape and
 * size as the service's answers.
 *
 *   PORT=0 node --import tsx bench/noop-server.ts   # prints "listening <port>"
 */
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import pino from "pino";
import {
  AppendSessionEventResponseSchema,
  GetSessionResponseSchema,
  SessionManagerService,
  StartSessionResponseSchema,
} from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { Session, SessionEvent } from "../src/domain/session.js";
import { toEventMessage, toSessionMessage } from "../src/transport/convert.js";
import { createAccessInterceptor } from "../src/transport/interceptors.js";
import { createServer } from "../src/transport/server.js";

const HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const now = new Date();

const session: Session = {
  sessionId: "sess_01JD0000000000000000000000",
  userId: "user-42",
  sessionIndex: 1,
  previousSessionId: "",
  state: "active",
  startTime: now,
  endTime: null,
  lastActivityTime: now,
  expireTime: new Date(now.getTime() + 1_800_000),
  idleTimeoutMs: 1_800_000,
  maxDurationMs: null,
  endReason: null,
  performerId: "",
  isTrainingData: false,
  metadata: { channel: "voice" },
  lastSeq: 1,
  lastHash: HASH,
};

const started: SessionEvent = {
  eventId: "evt_01JD0000000000000000000000",
  userId: session.userId,
  sessionId: session.sessionId,
  seq: 1,
  recordId: "start-1",
  requestHash: HASH,
  type: "session.started",
  eventTime: now,
  receiveTime: now,
  source: "session_manager",
  performerId: "",
  payload: { idle_timeout: "1800s", metadata: { channel: "voice" }, is_training_data: false, previous_session_id: "" },
  hash: HASH,
  position: { txId: 1000n, id: 1n },
};

const appended: SessionEvent = {
  ...started,
  eventId: "evt_01JD0000000000000000000001",
  seq: 2,
  recordId: "evt-1",
  type: "care.input.received",
  source: "speech-worker",
  payload: { text: "hello" },
  position: { txId: 1001n, id: 2n },
};

const startResponse = create(StartSessionResponseSchema, { session: toSessionMessage(session), event: toEventMessage(started) });
const getResponse = create(GetSessionResponseSchema, { session: toSessionMessage(session) });
const appendResponse = create(AppendSessionEventResponseSchema, { event: toEventMessage(appended) });

function routes(router: ConnectRouter): void {
  router.service(SessionManagerService, {
    async startSession() {
      return startResponse;
    },
    async getSession() {
      return getResponse;
    },
    async appendSessionEvent() {
      return appendResponse;
    },
  });
}

const server = createServer({
  routes,
  interceptors: [createAccessInterceptor(pino({ level: "silent" })), createValidateInterceptor()],
});
const port = await server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? "127.0.0.1");
process.stdout.write(`listening ${port}\n`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void server.close(1000).then(() => process.exit(0));
  });
}
