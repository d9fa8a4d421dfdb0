/**
 * The client's unary calls against a real server: a lost response is
 * retried with the same record_id and returns the original result (one row
 * in the database), over Connect (HTTP/1.1) and gRPC (HTTP/2); refused
 * connections are retried up to maxAttempts; the service's answers
 * (INVALID_ARGUMENT, FAILED_PRECONDITION) are never retried and surface as
 * typed errors with their reason and metadata.
 */
import { Code, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { createSessionManagerClient, SessionManagerError, type SessionManagerClientOptions } from "../../src/client/index.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { mintKey } from "../support/credentials.js";
import { freePort } from "../support/ports.js";
import { startProxy, type Framing, type TestProxy } from "./proxy.js";

let app: App;
let writer: string;
let proxy: TestProxy;

beforeAll(async () => {
  app = await startTestApp({ auth: "required" });
  writer = (await mintKey(app.sql, "writer")).token;
  proxy = await startProxy(app.port);
});

afterAll(async () => {
  await proxy?.close();
  await app?.stop();
});

/** Records each attempt of each unary call: its method and record_id. */
function recordAttempts(attempts: { method: string; recordId: string }[]): Interceptor {
  return (next) => (req) => {
    if (!req.stream) attempts.push({ method: req.method.name, recordId: (req.message as { recordId?: string }).recordId ?? "" });
    return next(req);
  };
}

function clientFor(port: number, extra: Partial<SessionManagerClientOptions> = {}) {
  return createSessionManagerClient({ baseUrl: `http://127.0.0.1:${port}`, credential: writer, retry: { initialDelayMs: 20, maxDelayMs: 200 }, ...extra });
}

async function rowsFor(sessionId: string, type: string) {
  return app.sql<{ event_id: string; record_id: string }[]>`
    select event_id, record_id from session_events where session_id = ${sessionId} and type = ${type}`;
}

describe("retries", () => {
  const transports: ["connect" | "grpc", Framing][] = [
    ["connect", "http1"],
    ["grpc", "h2"],
  ];
  for (const [transport, framing] of transports) {
    it(`retries a call whose response was lost with the same record_id and returns the original result (${transport})`, async () => {
      const attempts: { method: string; recordId: string }[] = [];
      const client = clientFor(proxy.port, { transport, interceptors: [recordAttempts(attempts)] });
      const { session } = await client.startSession({ userId: uniqueId("client-retry") });
      const type = "care.client.retry";

      const lost = proxy.loseNextResponse(framing);
      const response = await client.appendSessionEvent({ sessionId: session!.sessionId, type, source: "client-test", payload: { n: 1 } });
      await lost;

      const appends = attempts.filter((attempt) => attempt.method === "AppendSessionEvent");
      expect(appends).toHaveLength(2);
      expect(appends[1]!.recordId).toBe(appends[0]!.recordId);
      expect(appends[0]!.recordId).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/); // a ULID
      const rows = await rowsFor(session!.sessionId, type);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.event_id).toBe(response.event!.eventId);
      expect(rows[0]!.record_id).toBe(appends[0]!.recordId);
      expect(response.event!.seq).toBe(2n);
    });
  }

  it("retries StartSession after a lost response and gets the original session, not ACTIVE_SESSION_EXISTS", async () => {
    const attempts: { method: string; recordId: string }[] = [];
    const client = clientFor(proxy.port, { interceptors: [recordAttempts(attempts)] });
    const userId = uniqueId("client-retry-start");
    const lost = proxy.loseNextResponse("http1");
    const response = await client.startSession({ userId });
    await lost;
    expect(attempts.map((attempt) => attempt.recordId)).toEqual([attempts[0]!.recordId, attempts[0]!.recordId]);
    const sessions = await app.sql<{ session_id: string }[]>`select session_id from sessions where user_id = ${userId}`;
    expect(sessions.map((row) => row.session_id)).toEqual([response.session!.sessionId]);
  });

  it("retries a refused or reset connection up to maxAttempts, each time with the same record_id", async () => {
    const attempts: { method: string; recordId: string }[] = [];
    const retries: number[] = [];
    const dead = await startProxy(null); // accepts and closes at once: a reset connection
    const refused = await freePort(); // nothing listens: ECONNREFUSED
    try {
      for (const port of [dead.port, refused]) {
        attempts.length = 0;
        const client = clientFor(port, {
          interceptors: [recordAttempts(attempts)],
          retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20 },
          onRetry: ({ attempt }) => retries.push(attempt),
        });
        const error = await client.appendSessionEvent({ sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV", type: "care.x", source: "t" }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(SessionManagerError);
        expect(attempts).toHaveLength(3);
        expect(new Set(attempts.map((attempt) => attempt.recordId)).size).toBe(1);
      }
      expect(retries).toEqual([1, 2, 1, 2]);
    } finally {
      await dead.close();
    }
  });
});

describe("answers of the service", () => {
  it("does not retry INVALID_ARGUMENT and surfaces its reason", async () => {
    const attempts: { method: string; recordId: string }[] = [];
    const client = clientFor(app.port, { interceptors: [recordAttempts(attempts)] });
    const { session } = await client.startSession({ userId: uniqueId("client-invalid") });
    attempts.length = 0;
    const error = (await client.appendSessionEvent({ sessionId: session!.sessionId, type: "session.forged", source: "t" }).catch((e: unknown) => e)) as SessionManagerError;
    expect(error).toBeInstanceOf(SessionManagerError);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.codeName).toBe("INVALID_ARGUMENT");
    expect(error.reason).toBe("RESERVED_EVENT_TYPE");
    expect(attempts).toHaveLength(1);
  });

  it("does not retry FAILED_PRECONDITION and carries ACTIVE_SESSION_EXISTS with metadata.session_id", async () => {
    const attempts: { method: string; recordId: string }[] = [];
    const client = clientFor(app.port, { transport: "grpc-web", interceptors: [recordAttempts(attempts)] });
    const userId = uniqueId("client-conflict");
    const first = await client.startSession({ userId });
    attempts.length = 0;
    const error = (await client.startSession({ userId }).catch((e: unknown) => e)) as SessionManagerError;
    expect(error).toBeInstanceOf(SessionManagerError);
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.reason).toBe("ACTIVE_SESSION_EXISTS");
    expect(error.metadata.session_id).toBe(first.session!.sessionId);
    expect(error.message).toMatch(/^FAILED_PRECONDITION ACTIVE_SESSION_EXISTS: /);
    expect(attempts).toHaveLength(1);
  });

  it("surfaces UNAUTHENTICATED and PERMISSION_DENIED with their reasons, without retrying", async () => {
    const attempts: { method: string; recordId: string }[] = [];
    const anonymous = clientFor(app.port, { credential: undefined, interceptors: [recordAttempts(attempts)] });
    const missing = (await anonymous.listSessions({}).catch((e: unknown) => e)) as SessionManagerError;
    expect([missing.codeName, missing.reason]).toEqual(["UNAUTHENTICATED", "CREDENTIALS_MISSING"]);
    const reader = clientFor(app.port, { credential: (await mintKey(app.sql, "reader")).token, interceptors: [recordAttempts(attempts)] });
    const denied = (await reader.startSession({ userId: uniqueId("client-reader") }).catch((e: unknown) => e)) as SessionManagerError;
    expect([denied.codeName, denied.reason]).toEqual(["PERMISSION_DENIED", "ROLE_NOT_ALLOWED"]);
    expect(denied.metadata.role).toBe("reader");
    expect(attempts).toHaveLength(2);
  });
});

describe("package export", () => {
  it("resolves session-manager/client to the client", async () => {
    const exported = await import("session-manager/client");
    expect(exported.createSessionManagerClient).toBe(createSessionManagerClient);
  });
});
