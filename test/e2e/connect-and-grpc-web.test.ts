/**
 * Connect (JSON) and gRPC-Web clients from @connectrpc/connect-node over
 * HTTP/1.1, a plain-fetch Connect JSON call as curl would make it, and CORS
 * preflights for browser origins.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { EndReason, SessionState, type SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import { startTestApp, uniqueId } from "../support/app.js";

const UNKNOWN_SESSION_ID = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const ALLOWED_ORIGIN = "http://app.example";

let app: App;
let baseUrl: string;

beforeAll(async () => {
  app = await startTestApp();
  baseUrl = `http://127.0.0.1:${app.port}`;
});

afterAll(async () => {
  await app?.stop();
});

const transports: [string, (baseUrl: string) => Transport][] = [
  ["Connect JSON", (url) => createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false })],
  ["gRPC-Web", (url) => createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" })],
];

describe.each(transports)("%s client over HTTP/1.1", (name, makeTransport) => {
  let client: Client<typeof SessionManagerService>;

  beforeAll(() => {
    client = createClient(SessionManagerService, makeTransport(baseUrl));
  });

  it("starts, appends, lists, watches and ends a session", async () => {
    const userId = uniqueId(`${name === "gRPC-Web" ? "grpcweb" : "connect"}-user`);
    const started = await client.startSession({
      recordId: uniqueId("rec"),
      userId,
      metadata: { channel: "web", depth: 2 },
    });
    const sessionId = started.session!.sessionId;
    expect(started.session!.state).toBe(SessionState.ACTIVE);
    expect(started.event!.seq).toBe(1n);

    const appended = await client.appendSessionEvent({
      recordId: uniqueId("rec"),
      sessionId,
      type: "care.input.received",
      source: "connect-test",
      payload: { text: "hello" },
    });
    expect(appended.event!.seq).toBe(2n);
    expect(appended.event!.payload).toEqual({ text: "hello" });

    const listed = await client.listSessionEvents({ sessionId });
    expect(listed.events.map((event) => event.seq)).toEqual([1n, 2n]);
    expect(listed.events.map((event) => event.type)).toEqual(["session.started", "care.input.received"]);

    const watched = await watchUntilCaughtUp(client, userId);
    expect(watched.events.map((event) => event.seq)).toEqual([1n, 2n]);
    expect(watched.events.map((event) => event.sessionId)).toEqual([sessionId, sessionId]);
    expect(watched.caughtUpCursor).not.toBe("");
    expect(watched.abortCode).toBe(Code.Canceled);

    const ended = await client.endSession({ recordId: uniqueId("rec"), sessionId });
    expect(ended.session!.state).toBe(SessionState.ENDED);
    expect(ended.session!.endReason).toBe(EndReason.CLIENT);
    expect(ended.session!.metadata).toEqual({ channel: "web", depth: 2 });
    expect(ended.event!.seq).toBe(3n);
    expect(ended.event!.type).toBe("session.ended");
  });

  it("returns errors with a code and an ErrorInfo reason", async () => {
    const notFound = await rejection(client.getSession({ sessionId: UNKNOWN_SESSION_ID }));
    expect(notFound.code).toBe(Code.NotFound);
    expect(notFound.findDetails(ErrorInfoSchema)[0]?.reason).toBe("SESSION_NOT_FOUND");

    const userId = uniqueId("err-user");
    const first = await client.startSession({ recordId: uniqueId("rec"), userId });
    const exists = await rejection(client.startSession({ recordId: uniqueId("rec"), userId }));
    expect(exists.code).toBe(Code.FailedPrecondition);
    const info = exists.findDetails(ErrorInfoSchema)[0];
    expect(info?.reason).toBe("ACTIVE_SESSION_EXISTS");
    expect(info?.domain).toBe("sessionmanager");
    expect(info?.metadata.session_id).toBe(first.session!.sessionId);

    const invalid = await rejection(client.startSession({ recordId: uniqueId("rec"), userId: "bad user!" }));
    expect(invalid.code).toBe(Code.InvalidArgument);
    expect(invalid.findDetails(ErrorInfoSchema)[0]?.reason).toBe("INVALID_REQUEST");
  });
});

describe("plain fetch of Connect JSON (curl-like)", () => {
  it("calls GetSession with a JSON body and reads a JSON session", async () => {
    const userId = uniqueId("fetch-user");
    const started = await postJson("StartSession", { recordId: uniqueId("rec"), userId, isTrainingData: true });
    expect(started.status).toBe(200);
    const sessionId = started.body.session.sessionId as string;

    const got = await postJson("GetSession", { sessionId });
    expect(got.status).toBe(200);
    expect(got.contentType).toMatch(/^application\/json/);
    expect(got.body.session.sessionId).toBe(sessionId);
    expect(got.body.session.userId).toBe(userId);
    expect(got.body.session.state).toBe("SESSION_STATE_ACTIVE");
    expect(got.body.session.lastSeq).toBe("1");
    expect(got.body.session.isTrainingData).toBe(true);
    expect(got.body.session.startTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  });

  it("returns a Connect JSON error with an ErrorInfo detail", async () => {
    const res = await postJson("GetSession", { sessionId: UNKNOWN_SESSION_ID });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("not_found");
    const detail = (res.body.details as { type: string; value: string }[]).find(
      (d) => d.type === "google.rpc.ErrorInfo",
    );
    expect(detail).toBeDefined();
    const info = fromBinary(ErrorInfoSchema, Buffer.from(detail!.value, "base64"));
    expect(info.reason).toBe("SESSION_NOT_FOUND");
  });
});

describe("CORS", () => {
  let corsApp: App;

  beforeAll(async () => {
    corsApp = await startTestApp({ corsAllowedOrigins: [ALLOWED_ORIGIN] });
  });

  afterAll(async () => {
    await corsApp?.stop();
  });

  it("answers a preflight from an allowed origin", async () => {
    const res = await preflight(corsApp.port, ALLOWED_ORIGIN);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
    expect(res.headers.get("access-control-allow-methods")?.split(",")).toContain("POST");
    const allowedHeaders = res.headers.get("access-control-allow-headers")?.toLowerCase().split(",") ?? [];
    expect(allowedHeaders).toEqual(expect.arrayContaining(["content-type", "connect-protocol-version"]));
  });

  it("gives a disallowed origin no access-control-allow-origin", async () => {
    const res = await preflight(corsApp.port, "http://evil.example");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("allows the actual call from an allowed origin", async () => {
    const res = await fetch(`http://127.0.0.1:${corsApp.port}/sessionmanager.v1.SessionManagerService/GetSession`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", origin: ALLOWED_ORIGIN },
      body: JSON.stringify({ sessionId: UNKNOWN_SESSION_ID }),
    });
    expect(res.status).toBe(404);
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
  });
});

/** Watches a user's events from the beginning until caught_up, then aborts the stream. */
async function watchUntilCaughtUp(client: Client<typeof SessionManagerService>, userId: string) {
  const controller = new AbortController();
  const events: SessionEvent[] = [];
  let caughtUpCursor: string | undefined;
  let abortCode: Code | undefined;
  const timer = setTimeout(() => controller.abort(new Error("watch timed out")), 10_000);
  try {
    for await (const frame of client.watchSessionEvents({ userId, fromBeginning: true }, { signal: controller.signal })) {
      if (frame.frame.case === "event") events.push(frame.frame.value);
      if (frame.frame.case === "caughtUp") {
        caughtUpCursor = frame.frame.value.cursor;
        controller.abort();
      }
    }
  } catch (error) {
    abortCode = ConnectError.from(error).code;
  } finally {
    clearTimeout(timer);
  }
  return { events, caughtUpCursor, abortCode };
}

/** Resolves with the ConnectError a call rejects with; fails if it resolves. */
async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded, expected an error");
}

/** POSTs a Connect JSON unary request the way curl would. */
async function postJson(method: string, body: unknown) {
  const res = await fetch(`${baseUrl}/sessionmanager.v1.SessionManagerService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", body: (await res.json()) as any };
}

/** Sends a CORS preflight for a Connect POST. */
function preflight(port: number, origin: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/sessionmanager.v1.SessionManagerService/GetSession`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,connect-protocol-version",
    },
  });
}
