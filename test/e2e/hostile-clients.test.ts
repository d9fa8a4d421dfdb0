/**
 * What hostile or broken clients send, over real sockets: impossible dates,
 * streams reset right after their headers, connections that open no stream,
 * and corrupt gzip bodies. Each gets a clear answer or a closed connection,
 * never INTERNAL, never an error-level log line, never a stored row.
 */
import http2 from "node:http2";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WatchSessionEventsRequestSchema } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { openTestDatabase, startTestApp, uniqueId } from "../support/app.js";

const SERVICE = "/sessionmanager.v1.SessionManagerService";
const HEADERS_TIMEOUT_MS = 300;
const CONNECTION_IDLE_MS = 800;

let app: App;
const logLines: Array<{ level: number; msg: string; rpc?: string; code?: string; protocol?: string }> = [];
const sql = openTestDatabase(2);

beforeAll(async () => {
  const log = pino({ level: "info" }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  app = await startTestApp({ headersTimeoutMs: HEADERS_TIMEOUT_MS, connectionIdleMs: CONNECTION_IDLE_MS }, log);
});

afterAll(async () => {
  await app?.stop();
  await sql.end();
});

const base = () => `http://127.0.0.1:${app.port}`;

async function postJson(method: string, body: unknown): Promise<{ status: number; code?: string }> {
  const response = await fetch(`${base()}${SERVICE}/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, ...((await response.json()) as { code?: string }) };
}

/** Resolves when `predicate` holds, polling every 20 ms; rejects after `timeoutMs`. */
async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function grpcFrame(payload: Buffer, compressed = false): Buffer {
  const frame = Buffer.alloc(5 + payload.length);
  frame[0] = compressed ? 1 : 0;
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  return frame;
}

describe("impossible dates", () => {
  it.each(["2030-02-30T00:00:00Z", "2027-02-29T00:00:00Z", "2030-04-31T12:00:00Z", "2030-01-01T24:00:00Z", "2030-01-01T23:59:60Z", "2030-01-01T00:00:00+24:00"])(
    "refuses event_time %s over Connect JSON and stores nothing",
    async (eventTime) => {
      const userId = uniqueId("dates");
      expect(await postJson("StartSession", { recordId: uniqueId("rec"), userId, eventTime })).toMatchObject({ status: 400, code: "invalid_argument" });
      const started = await postJson("StartSession", { recordId: uniqueId("rec"), userId });
      expect(started.status).toBe(200);
      const [{ session_id: sessionId }] = await sql<[{ session_id: string }]>`select session_id from sessions where user_id = ${userId}`;
      const appended = await postJson("AppendSessionEvent", { recordId: uniqueId("rec"), sessionId, type: "care.x", source: "t", eventTime });
      expect(appended).toMatchObject({ status: 400, code: "invalid_argument" });
      const [{ n }] = await sql<[{ n: number }]>`select count(*)::int as n from session_events where user_id = ${userId}`;
      expect(n).toBe(1);
    },
  );

  it("keeps a real leap day exactly", async () => {
    const userId = uniqueId("dates");
    expect((await postJson("StartSession", { recordId: uniqueId("rec"), userId, eventTime: "2028-02-29T23:59:59.250Z" })).status).toBe(200);
    const [row] = await sql<[{ event_time: Date }]>`select event_time from session_events where user_id = ${userId}`;
    expect(row.event_time.toISOString()).toBe("2028-02-29T23:59:59.250Z");
  });
});

describe("streams reset by their client", () => {
  let connectApp: App;
  beforeAll(async () => {
    const log = pino({ level: "info" }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
    connectApp = await startTestApp({ h2cAdapter: "connect" }, log);
  });
  afterAll(async () => {
    await connectApp?.stop();
  });

  /** Opens `tries` WatchSessionEvents streams on one connection and resets each at once; half after sending the request. */
  async function resetStreams(port: number, contentType: string, tries: number): Promise<void> {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const body = grpcFrame(
      contentType.includes("json") ? Buffer.from(JSON.stringify({ userId: "u" })) : Buffer.from(toBinary(WatchSessionEventsRequestSchema, create(WatchSessionEventsRequestSchema, { userId: "u" }))),
    );
    const closed: Promise<unknown>[] = [];
    for (let i = 0; i < tries; i++) {
      const stream = session.request({ ":method": "POST", ":path": `${SERVICE}/WatchSessionEvents`, "content-type": contentType, te: "trailers" }, { endStream: false });
      stream.on("error", () => {});
      closed.push(new Promise((resolve) => stream.on("close", resolve)));
      if (i % 2 === 1) stream.write(body);
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    await Promise.all(closed);
    session.close();
  }

  it.each([
    ["grpc", "application/grpc"],
    ["grpc_web", "application/grpc-web+proto"],
    ["connect", "application/connect+json"],
  ])("connect-node logs a WatchSessionEvents reset right after its headers as canceled at info (%s)", async (protocol, contentType) => {
    const before = logLines.length;
    const tries = 20;
    await resetStreams(connectApp.port, contentType, tries);
    const calls = () => logLines.slice(before).filter((line) => line.rpc === "WatchSessionEvents");
    await until(() => calls().length === tries, 10_000, `${tries} access log lines`);
    expect(calls().map((line) => [line.protocol, line.code, line.level])).toEqual(Array(tries).fill([protocol, "Canceled", 30]));
    expect(logLines.slice(before).filter((line) => line.level >= 50)).toEqual([]);
  });

  it("grpc-js logs a reset that reaches the handler as canceled at info, and nothing at error level", async () => {
    const before = logLines.length;
    await resetStreams(app.port, "application/grpc", 20);
    // Resets that arrive before the request message never reach a handler under grpc-js: no line at all.
    const watchLines = () => logLines.slice(before).filter((line) => line.rpc === "WatchSessionEvents");
    const probe = await postJson("GetSession", { sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" });
    expect(probe.code).toBe("not_found");
    expect(watchLines().every((line) => line.code === "Canceled" && line.level === 30)).toBe(true);
    expect(logLines.slice(before).filter((line) => line.level >= 50)).toEqual([]);
  });
});

describe("connections that open no stream", () => {
  const preface = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

  function connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(app.port, "127.0.0.1", () => resolve(socket));
      socket.on("error", reject);
    });
  }

  it("closes HTTP/2 connections that send only the preface, or dribble it, within the headers timeout", async () => {
    const sockets = await Promise.all(Array.from({ length: 40 }, connect));
    const closed = new Set<net.Socket>();
    for (const socket of sockets) {
      socket.on("close", () => closed.add(socket));
      socket.on("data", () => {});
    }
    sockets.slice(0, 20).forEach((socket) => socket.write(preface));
    // The other 20 dribble the preface, one byte every 50 ms, forever.
    let offset = 0;
    const dribble = setInterval(() => {
      for (const socket of sockets.slice(20)) if (!socket.destroyed) socket.write(preface.subarray(offset % preface.length, (offset % preface.length) + 1));
      offset++;
    }, 50);
    try {
      await until(() => closed.size === sockets.length, 5_000, "every idle connection to be closed");
    } finally {
      clearInterval(dribble);
      sockets.forEach((socket) => socket.destroy());
    }
  });

  it("sends GOAWAY to a connection idle after its calls, but keeps a connection whose Watch stream lasts longer", async () => {
    const idle = http2.connect(base());
    const goaway = new Promise<void>((resolve) => idle.once("goaway", () => resolve()));
    const call = idle.request({ ":method": "POST", ":path": `${SERVICE}/GetSession`, "content-type": "application/grpc", te: "trailers" });
    call.end(grpcFrame(Buffer.alloc(0)));
    call.resume();
    await new Promise((resolve) => call.on("close", resolve));

    const watching = http2.connect(base());
    let watchGoaway = false;
    watching.on("goaway", () => (watchGoaway = true));
    const stream = watching.request({ ":method": "POST", ":path": `${SERVICE}/WatchSessionEvents`, "content-type": "application/grpc", te: "trailers" });
    stream.end(grpcFrame(Buffer.from(toBinary(WatchSessionEventsRequestSchema, create(WatchSessionEventsRequestSchema, { userId: uniqueId("idle") })))));
    let frames = 0;
    stream.on("data", () => frames++);

    await goaway;
    // Heartbeats arrive every second in tests: wait for two more than the idle bound allows, then check.
    const framesAtGoaway = frames;
    await until(() => frames >= framesAtGoaway + 2, 5_000, "two heartbeats after the idle bound");
    expect(watchGoaway).toBe(false);
    expect(watching.closed || watching.destroyed).toBe(false);
    stream.close();
    watching.close();
    idle.close();
  });
});

describe("corrupt gzip bodies", () => {
  const truncated = gzipSync(Buffer.from(JSON.stringify({ sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }))).subarray(0, 15);

  it.each([
    ["truncated", truncated],
    ["not gzip", Buffer.from("certainly not gzip")],
  ])("answers a %s gzip body over Connect with invalid_argument", async (_name, body) => {
    const response = await fetch(`${base()}${SERVICE}/GetSession`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body,
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { code: string }).code).toBe("invalid_argument");
  });

  // Decided upstream: grpc-js answers a message that fails to decompress with
  // INTERNAL "Failed to decompress message", as the gRPC status code table
  // prescribes ("Could not decompress, but compression algorithm supported").
  it("answers a truncated gzip message over gRPC (grpc-js) with INTERNAL and keeps serving", async () => {
    const session = http2.connect(base());
    try {
      const stream = session.request({ ":method": "POST", ":path": `${SERVICE}/GetSession`, "content-type": "application/grpc", te: "trailers", "grpc-encoding": "gzip" });
      // A trailers-only answer carries grpc-status in the response headers.
      const status = new Promise<unknown>((resolve) => {
        stream.on("response", (headers) => headers["grpc-status"] !== undefined && resolve(headers["grpc-status"]));
        stream.on("trailers", (trailers) => resolve(trailers["grpc-status"]));
      });
      stream.resume();
      stream.end(grpcFrame(truncated, true));
      expect(await status).toBe("13");
    } finally {
      session.close();
    }
    expect((await postJson("GetSession", { sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" })).code).toBe("not_found");
  });
});
