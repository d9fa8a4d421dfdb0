/**
 * The fixed answers of the benchmark floors (bench/noop-server.ts through
 * our server, bench/plain-grpc-server.ts on bare grpc-js): one realistic
 * session and its events, built once through the service's own converters,
 * so they encode to the same shape and size as the service's answers.
 */
import { create } from "@bufbuild/protobuf";
import {
  AppendSessionEventResponseSchema,
  EndSessionResponseSchema,
  GetSessionResponseSchema,
  StartSessionResponseSchema,
} from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { Session, SessionEvent } from "../src/domain/session.js";
import { toEventMessage, toSessionMessage } from "../src/transport/convert.js";

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

const endedSession: Session = { ...session, state: "ended", endTime: now, expireTime: null, endReason: "client", lastSeq: 3 };

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

const ended: SessionEvent = {
  ...started,
  eventId: "evt_01JD0000000000000000000002",
  seq: 3,
  recordId: "end-1",
  type: "session.ended",
  payload: { end_reason: "END_REASON_CLIENT" },
  position: { txId: 1002n, id: 3n },
};

/** StartSession's answer: the new session and its "session.started" event. */
export const startResponse = create(StartSessionResponseSchema, { session: toSessionMessage(session), event: toEventMessage(started) });
/** GetSession's answer: an active session. */
export const getResponse = create(GetSessionResponseSchema, { session: toSessionMessage(session) });
/** AppendSessionEvent's answer: the appended event. */
export const appendResponse = create(AppendSessionEventResponseSchema, { event: toEventMessage(appended) });
/** EndSession's answer: the ended session and its "session.ended" event. */
export const endResponse = create(EndSessionResponseSchema, { session: toSessionMessage(endedSession), event: toEventMessage(ended) });
