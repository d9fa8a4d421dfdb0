/**
 * A real @grpc/grpc-js client (dynamic proto-loader stubs) against the
 * service over h2c: the unary lifecycle, errors with google.rpc.ErrorInfo in
 * the grpc-status-details-bin trailer, and a WatchSessionEvents stream.
 */
import http2 from "node:http2";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { ErrorInfoSchema, type ErrorInfo } from "../../gen/google/rpc/error_details_pb.js";
import { WatchSessionEventsRequestSchema } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { startTestApp, uniqueId } from "../support/app.js";

const PROTO_ROOT = fileURLToPath(new URL("../../proto", import.meta.url));
const PROTO_VENDOR = fileURLToPath(new URL("../../proto-vendor", import.meta.url));
const UNKNOWN_SESSION_ID = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";

// proto-loader objects: keepCase field names, int64 as strings, enums as names.
// google.protobuf.Value comes from protobufjs's bundled descriptors, whose
// field names are camelCase even with keepCase (numberValue, stringValue).
type Message = Record<string, any>;

let app: App;
let client: grpc.Client;

beforeAll(async () => {
  app = await startTestApp();
  const definition = protoLoader.loadSync("sessionmanager/v1/session_manager_service.proto", {
    includeDirs: [PROTO_ROOT, PROTO_VENDOR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as any;
  const Service = loaded.sessionmanager.v1.SessionManagerService as grpc.ServiceClientConstructor;
  client = new Service(`127.0.0.1:${app.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await app?.stop();
});

describe("grpc-js client over h2c", () => {
  it("starts a session, appends two events, lists them, gets and ends the session", async () => {
    const userId = uniqueId("grpcjs-user");
    const started = await unary("StartSession", {
      record_id: uniqueId("rec"),
      user_id: userId,
      performer_id: "agent-7",
      idle_timeout: { seconds: "600", nanos: 0 },
      metadata: { fields: { channel: { stringValue: "web" } } },
      is_training_data: true,
    });
    const session = started.session;
    expect(session.session_id).toMatch(/^sess_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(session.user_id).toBe(userId);
    expect(session.state).toBe("SESSION_STATE_ACTIVE");
    expect(session.last_seq).toBe("1");
    expect(started.event.seq).toBe("1");
    expect(started.event.type).toBe("session.started");

    for (const type of ["care.input.received", "care.output.sent"]) {
      const appended = await unary("AppendSessionEvent", {
        record_id: uniqueId("rec"),
        session_id: session.session_id,
        type,
        source: "grpc-js-test",
        payload: { fields: { n: { numberValue: 1 } } },
      });
      expect(appended.event.session_id).toBe(session.session_id);
      expect(appended.event.type).toBe(type);
    }

    const listed = await unary("ListSessionEvents", { session_id: session.session_id });
    expect(listed.events.map((event: Message) => event.seq)).toEqual(["1", "2", "3"]);
    expect(listed.events.map((event: Message) => event.type)).toEqual([
      "session.started",
      "care.input.received",
      "care.output.sent",
    ]);
    expect(listed.events[1].source).toBe("grpc-js-test");
    expect(listed.events[1].payload.fields.n.numberValue).toBe(1);
    expect(listed.next_page_token).toBe("");

    const got = (await unary("GetSession", { session_id: session.session_id })).session;
    expect(got.session_id).toBe(session.session_id);
    expect(got.user_id).toBe(userId);
    expect(got.state).toBe("SESSION_STATE_ACTIVE");
    expect(got.last_seq).toBe("3");
    expect(got.performer_id).toBe("agent-7");
    expect(got.is_training_data).toBe(true);
    expect(got.idle_timeout).toEqual({ seconds: "600", nanos: 0 });
    expect(got.metadata.fields.channel.stringValue).toBe("web");
    expect(got.start_time).toEqual(session.start_time);
    expect(got.end_time).toBeNull();

    const ended = await unary("EndSession", { record_id: uniqueId("rec"), session_id: session.session_id });
    expect(ended.session.state).toBe("SESSION_STATE_ENDED");
    expect(ended.session.end_reason).toBe("END_REASON_CLIENT");
    expect(ended.session.last_seq).toBe("4");
    expect(ended.session.expire_time).toBeNull();
    expect(ended.event.seq).toBe("4");
    expect(ended.event.type).toBe("session.ended");
  });

  it("returns FAILED_PRECONDITION / ACTIVE_SESSION_EXISTS naming the open session", async () => {
    const userId = uniqueId("grpcjs-user");
    const first = await unary("StartSession", { record_id: uniqueId("rec"), user_id: userId });

    const error = await unaryError("StartSession", { record_id: uniqueId("rec"), user_id: userId });
    expect(error.code).toBe(grpc.status.FAILED_PRECONDITION);
    const info = errorInfoOf(error);
    expect(info.reason).toBe("ACTIVE_SESSION_EXISTS");
    expect(info.domain).toBe("sessionmanager");
    expect(info.metadata.session_id).toBe(first.session.session_id);
  });

  it("returns NOT_FOUND / SESSION_NOT_FOUND for an unknown session", async () => {
    const error = await unaryError("GetSession", { session_id: UNKNOWN_SESSION_ID });
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(errorInfoOf(error).reason).toBe("SESSION_NOT_FOUND");
  });

  it("keeps calls whose deadline is 30 days away (past setTimeout's 2^31 ms) going, instead of DEADLINE_EXCEEDED at once", async () => {
    const deadline = new Date(Date.now() + 30 * 24 * 3600 * 1000);
    const error = await new Promise<grpc.ServiceError | null>((resolve) =>
      (client as any).GetSession({ session_id: UNKNOWN_SESSION_ID }, { deadline }, (failure: grpc.ServiceError | null) => resolve(failure)),
    );
    expect({ code: error?.code, reason: error && errorInfoOf(error).reason }).toEqual({ code: grpc.status.NOT_FOUND, reason: "SESSION_NOT_FOUND" });

    const userId = uniqueId("grpcjs-deadline");
    const call = (client as any).WatchSessionEvents({ user_id: userId, from_beginning: true }, { deadline }) as grpc.ClientReadableStream<Message>;
    const reader = new FrameReader(call);
    try {
      expect((await reader.next()).frame).toBe("caught_up");
      const started = await unary("StartSession", { record_id: uniqueId("rec"), user_id: userId });
      const live = await reader.next();
      expect({ frame: live.frame, event: live.event?.event_id }).toEqual({ frame: "event", event: started.event.event_id });
    } finally {
      call.cancel();
    }
  });

  it("ends a WatchSessionEvents stream at its grpc-timeout with DEADLINE_EXCEEDED, not OK (a client without its own timer, e.g. curl)", async () => {
    // A raw HTTP/2 call: grpc-js clients end the call at the deadline themselves, whatever the server sends.
    const session = http2.connect(`http://127.0.0.1:${app.port}`);
    try {
      const request = toBinary(WatchSessionEventsRequestSchema, create(WatchSessionEventsRequestSchema, { userId: uniqueId("grpcjs-timeout") }));
      const frame = Buffer.alloc(5 + request.length);
      frame.writeUInt32BE(request.length, 1);
      frame.set(request, 5);
      const stream = session.request({
        ":method": "POST",
        ":path": "/sessionmanager.v1.SessionManagerService/WatchSessionEvents",
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": "400m",
      });
      stream.end(frame);
      stream.resume();
      const startedAt = Date.now();
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.on("trailers", resolve);
        stream.on("error", reject);
        stream.on("close", () => reject(new Error(`stream closed without trailers (rst ${stream.rstCode})`)));
      });
      expect(trailers["grpc-status"]).toBe(String(grpc.status.DEADLINE_EXCEEDED));
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(300);
    } finally {
      session.close();
    }
  });

  it("returns INVALID_ARGUMENT / INVALID_REQUEST for a malformed user_id", async () => {
    const error = await unaryError("StartSession", { record_id: uniqueId("rec"), user_id: "not a valid id!" });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(errorInfoOf(error).reason).toBe("INVALID_REQUEST");
  });

  it("streams a user's events from the beginning, then caught_up, then live events, until cancelled", async () => {
    const userId = uniqueId("grpcjs-watch");
    const started = await unary("StartSession", { record_id: uniqueId("rec"), user_id: userId });
    const sessionId = started.session.session_id;
    for (const type of ["care.a", "care.b"]) {
      await unary("AppendSessionEvent", { record_id: uniqueId("rec"), session_id: sessionId, type, source: "test" });
    }

    const call = (client as any).WatchSessionEvents({ user_id: userId, from_beginning: true }) as grpc.ClientReadableStream<Message>;
    const reader = new FrameReader(call);
    try {
      const backlog: Message[] = [];
      for (let i = 0; i < 3; i++) backlog.push(await reader.next());
      expect(backlog.map((frame) => frame.frame)).toEqual(["event", "event", "event"]);
      expect(backlog.map((frame) => frame.event.seq)).toEqual(["1", "2", "3"]);
      expect(backlog.map((frame) => frame.event.user_id)).toEqual([userId, userId, userId]);
      expect(backlog.map((frame) => frame.event.type)).toEqual(["session.started", "care.a", "care.b"]);

      const caughtUp = await reader.next();
      expect(caughtUp.frame).toBe("caught_up");
      expect(caughtUp.caught_up.cursor).not.toBe("");

      const appended = await unary("AppendSessionEvent", {
        record_id: uniqueId("rec"),
        session_id: sessionId,
        type: "care.live",
        source: "test",
      });
      const live = await reader.next();
      expect(live.frame).toBe("event");
      expect(live.event.seq).toBe("4");
      expect(live.event.event_id).toBe(appended.event.event_id);
      expect(live.event.type).toBe("care.live");
    } finally {
      call.cancel();
    }

    const status = await reader.closed;
    expect(status.code).toBe(grpc.status.CANCELLED);

    // The server survived the cancelled stream and still answers.
    const after = await unary("GetSession", { session_id: sessionId });
    expect(after.session.last_seq).toBe("4");
  });
});

/** Calls a unary RPC and resolves with its response. */
function unary(method: string, request: Message): Promise<Message> {
  return new Promise((resolve, reject) => {
    (client as any)[method](request, (error: grpc.ServiceError | null, response: Message) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** Calls a unary RPC that must fail and resolves with its error. */
async function unaryError(method: string, request: Message): Promise<grpc.ServiceError> {
  try {
    await unary(method, request);
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error(`${method} succeeded, expected an error`);
}

/**
 * Decodes the google.rpc.ErrorInfo from the grpc-status-details-bin trailer,
 * a google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }.
 */
function errorInfoOf(error: grpc.ServiceError): ErrorInfo {
  const [raw] = error.metadata.get("grpc-status-details-bin");
  expect(raw, "grpc-status-details-bin trailer").toBeInstanceOf(Buffer);
  const reader = new BinaryReader(raw as Buffer);
  let code: number | undefined;
  const infos: ErrorInfo[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) {
      code = reader.int32();
    } else if (field === 3 && wireType === WireType.LengthDelimited) {
      const any = fromBinary(AnySchema, reader.bytes());
      if (any.typeUrl.endsWith("/google.rpc.ErrorInfo")) infos.push(fromBinary(ErrorInfoSchema, any.value));
    } else {
      reader.skip(wireType);
    }
  }
  expect(code, "google.rpc.Status.code").toBe(error.code);
  expect(infos).toHaveLength(1);
  return infos[0]!;
}

/** Buffers the frames of a server stream; `next()` skips heartbeats. */
class FrameReader {
  private readonly frames: Message[] = [];
  private waiter: (() => void) | null = null;
  private failure: grpc.StatusObject | null = null;
  /** Resolves with the stream's final status (error or OK). */
  readonly closed: Promise<grpc.StatusObject>;

  constructor(call: grpc.ClientReadableStream<Message>) {
    call.on("data", (frame: Message) => {
      this.frames.push(frame);
      this.wake();
    });
    // Without an "error" listener a cancelled call would throw.
    call.on("error", () => {});
    this.closed = new Promise((resolve) => {
      call.on("status", (status: grpc.StatusObject) => {
        this.failure = status;
        this.wake();
        resolve(status);
      });
    });
  }

  async next(timeoutMs = 10_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame && frame.frame !== "heartbeat") return frame;
      if (frame) continue;
      if (this.failure) throw new Error(`stream ended with code ${this.failure.code} before the next frame`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a frame");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  private wake(): void {
    this.waiter?.();
  }
}
