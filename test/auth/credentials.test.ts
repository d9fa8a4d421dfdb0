/**
 * The credentials matrix (README, "Credentials") over gRPC (grpc-js on h2c),
 * Connect JSON and gRPC-Web (HTTP/1.1): missing, malformed, unknown and
 * revoked keys; roles; JWTs expired, not yet valid, from the wrong issuer or
 * audience, badly signed or unsigned; a user-scoped JWT reaching another
 * user's sessions through every RPC; streams that outlive their credential;
 * the per-principal stream cap; oversize messages. Nothing refused is stored,
 * and the log names the principal, never the credential.
 */
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { revokeKey } from "../../src/service/api-keys.js";
import { startTestApp, uniqueId } from "../support/app.js";
import {
  TEST_AUDIENCE,
  TEST_ISSUER,
  createTestIdentityProvider,
  mintKey,
  sendCredential,
  unsignedToken,
  type TestIdentityProvider,
} from "../support/credentials.js";
import { expectError } from "../support/rpc.js";
import { waitFor } from "../support/wait.js";

type SessionClient = Client<typeof SessionManagerService>;

const STREAMS_PER_PRINCIPAL = 3;
const MAX_REQUEST_BYTES = 64 * 1024;
const UNKNOWN_SESSION = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";

let app: App;
let idp: TestIdentityProvider;
let keys: Record<"reader" | "writer" | "admin", { keyId: string; token: string }>;
const logLines: Record<string, unknown>[] = [];
const rawLog: string[] = [];

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  const log = pino({ level: "debug" }, {
    write: (line: string) => {
      rawLog.push(line);
      logLines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  app = await startTestApp(
    {
      auth: "required",
      authCacheMs: 200,
      jwtPublicKeyFile: idp.publicKeyFile,
      jwtIssuer: TEST_ISSUER,
      jwtAudience: TEST_AUDIENCE,
      watchStreamsPerPrincipal: STREAMS_PER_PRINCIPAL,
      maxRequestBytes: MAX_REQUEST_BYTES,
    },
    log,
  );
  keys = { reader: await mintKey(app.sql, "reader"), writer: await mintKey(app.sql, "writer"), admin: await mintKey(app.sql, "admin") };
});

afterAll(async () => {
  await app?.stop();
});

const PROTOCOLS: [string, (baseUrl: string, interceptors: Interceptor[]) => Transport][] = [
  ["gRPC", (baseUrl, interceptors) => createGrpcTransport({ baseUrl, interceptors })],
  ["Connect JSON", (baseUrl, interceptors) => createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors })],
  ["gRPC-Web", (baseUrl, interceptors) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors })],
];

async function sessionCount(userId: string): Promise<number> {
  const [row] = await app.sql<{ n: string }[]>`select count(*)::text as n from sessions where user_id = ${userId}`;
  return Number(row!.n);
}

async function eventCount(recordId: string): Promise<number> {
  const [row] = await app.sql<{ n: string }[]>`select count(*)::text as n from session_events where record_id = ${recordId}`;
  return Number(row!.n);
}

/** Replaces a signed token's payload, keeping its header and signature. */
function forge(token: string, payload: object): string {
  const [header, , signature] = token.split(".");
  return `${header}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${signature}`;
}

/** Reads a stream to its end; returns the frames seen before it ended. */
async function drain(stream: AsyncIterable<unknown>): Promise<number> {
  let frames = 0;
  for await (const _frame of stream) frames++;
  return frames;
}

describe.each(PROTOCOLS)("credentials over %s", (protocol, makeTransport) => {
  const client = (interceptors: Interceptor[] = []): SessionClient =>
    createClient(SessionManagerService, makeTransport(`http://127.0.0.1:${app.port}`, interceptors));
  const withKey = (role: keyof typeof keys) => client([sendCredential(keys[role].token)]);
  const withToken = (token: string) => client([sendCredential(token)]);

  it("refuses a call without a credential, or with a malformed or unknown one, and stores nothing", async () => {
    const userId = uniqueId("auth-refused");
    const start = (c: SessionClient) => c.startSession({ recordId: uniqueId("rec"), userId });
    await expectError(start(client()), Code.Unauthenticated, "CREDENTIALS_MISSING");
    await expectError(client().getSession({ sessionId: UNKNOWN_SESSION }), Code.Unauthenticated, "CREDENTIALS_MISSING");
    for (const header of ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", `Bearer ${keys.writer.token}x`, "smk_only"]) {
      await expectError(start(client([sendCredential(header, true)])), Code.Unauthenticated, "CREDENTIALS_INVALID");
    }
    // Well-formed, but no such key; and a known key id with the wrong secret.
    const unknown = `smk_01ARZ3NDEKTSV4RRFFQ69G5FAV_${"A".repeat(43)}`;
    await expectError(start(withToken(unknown)), Code.Unauthenticated, "CREDENTIALS_INVALID");
    const wrongSecret = keys.writer.token.slice(0, -43) + "B".repeat(43);
    await expectError(start(withToken(wrongSecret)), Code.Unauthenticated, "CREDENTIALS_INVALID");
    expect(await sessionCount(userId)).toBe(0);
  });

  it("lets a reader read and watch, and refuses its mutations; writers and admins mutate", async () => {
    const userId = uniqueId("auth-roles");
    const { session } = await withKey("writer").startSession({ recordId: uniqueId("rec"), userId });
    const sessionId = session!.sessionId;
    const reader = withKey("reader");
    expect((await reader.getSession({ sessionId })).session!.userId).toBe(userId);
    expect((await reader.listSessions({ userId })).sessions).toHaveLength(1);
    expect((await reader.listSessionEvents({ sessionId })).events).toHaveLength(1);
    for await (const frame of reader.watchSessionEvents({ userId, fromBeginning: true })) {
      if (frame.frame.case === "caughtUp") break;
    }
    const recordId = uniqueId("rec");
    const mutations: [string, () => Promise<unknown>][] = [
      ["StartSession", () => reader.startSession({ recordId, userId: uniqueId("auth-roles-other") })],
      ["AppendSessionEvent", () => reader.appendSessionEvent({ recordId, sessionId, type: "care.note", source: "t" })],
      ["HeartbeatSession", () => reader.heartbeatSession({ sessionId })],
      ["PauseSession", () => reader.pauseSession({ recordId, sessionId })],
      ["ResumeSession", () => reader.resumeSession({ recordId, sessionId })],
      ["UpdateSession", () => reader.updateSession({ recordId, session: { sessionId, isTrainingData: true }, updateMask: { paths: ["is_training_data"] } })],
      ["EndSession", () => reader.endSession({ recordId, sessionId })],
    ];
    for (const [name, call] of mutations) {
      const error = await expectError(call(), Code.PermissionDenied, "ROLE_NOT_ALLOWED");
      expect(error.rawMessage, name).toContain(name);
    }
    expect(await eventCount(recordId)).toBe(0);
    expect((await reader.getSession({ sessionId })).session!.isTrainingData).toBe(false);
    await withKey("admin").appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.note", source: "t" });
    await withKey("writer").endSession({ recordId: uniqueId("rec"), sessionId });
  });

  it("refuses JWTs that are expired, never expire, are not yet valid, for another issuer or audience, badly signed or unsigned", async () => {
    const userId = uniqueId("auth-jwt-bad");
    const now = Math.floor(Date.now() / 1000);
    const bad = {
      expired: await idp.sign(userId, { claims: { exp: now - 120 } }),
      "not yet valid": await idp.sign(userId, { claims: { nbf: now + 120 } }),
      "wrong issuer": await idp.sign(userId, { claims: { iss: "https://evil.example" } }),
      "wrong audience": await idp.sign(userId, { claims: { aud: "another-service" } }),
      "no exp": await idp.sign(userId, { claims: { exp: undefined } }),
      "exp 1e400 (Infinity)": await idp.signText(JSON.stringify({ sub: userId, iss: TEST_ISSUER, aud: TEST_AUDIENCE }).replace(/}$/, ',"exp":1e400}')),
      "bad signature": await idp.sign(userId, { key: idp.strangerKey }),
      "alg none": unsignedToken(userId),
      tampered: forge(await idp.sign(userId), { sub: "someone-else", iss: TEST_ISSUER, aud: TEST_AUDIENCE, exp: now + 300 }),
    };
    const messages = new Set<string>();
    for (const token of Object.values(bad)) {
      const error = await expectError(withToken(token).startSession({ recordId: uniqueId("rec"), userId }), Code.Unauthenticated, "CREDENTIALS_INVALID");
      messages.add(error.rawMessage);
    }
    // One message for every case: it does not say which part was wrong.
    expect(messages.size).toBe(1);
    expect(await sessionCount(userId)).toBe(0);
  });

  it("scopes a JWT to its own user on every RPC, the same answer whether or not a session exists", async () => {
    const alice = uniqueId("auth-alice");
    const bob = uniqueId("auth-bob");
    const asAlice = withToken(await idp.sign(alice));
    const own = (await asAlice.startSession({ recordId: uniqueId("rec"), userId: alice })).session!.sessionId;
    await asAlice.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: own, type: "care.note", source: "t" });
    expect((await asAlice.listSessions({ userId: alice })).sessions.map((s) => s.sessionId)).toEqual([own]);
    const bobs = (await withKey("writer").startSession({ recordId: uniqueId("rec"), userId: bob })).session!.sessionId;

    const recordId = uniqueId("rec");
    for (const target of [bobs, UNKNOWN_SESSION]) {
      const calls: [string, () => Promise<unknown>][] = [
        ["GetSession", () => asAlice.getSession({ sessionId: target })],
        ["ListSessionEvents", () => asAlice.listSessionEvents({ sessionId: target })],
        ["AppendSessionEvent", () => asAlice.appendSessionEvent({ recordId, sessionId: target, type: "care.note", source: "t" })],
        ["HeartbeatSession", () => asAlice.heartbeatSession({ sessionId: target })],
        ["PauseSession", () => asAlice.pauseSession({ recordId, sessionId: target })],
        ["ResumeSession", () => asAlice.resumeSession({ recordId, sessionId: target })],
        ["UpdateSession", () => asAlice.updateSession({ recordId, session: { sessionId: target, isTrainingData: true }, updateMask: { paths: ["is_training_data"] } })],
        ["EndSession", () => asAlice.endSession({ recordId, sessionId: target })],
      ];
      for (const [name, call] of calls) {
        const error = await expectError(call(), Code.PermissionDenied, "USER_NOT_ALLOWED");
        expect(error.rawMessage, `${name} on ${target}`).not.toContain(target);
      }
    }
    await expectError(asAlice.startSession({ recordId, userId: bob }), Code.PermissionDenied, "USER_NOT_ALLOWED");
    await expectError(asAlice.listSessions({}), Code.PermissionDenied, "USER_NOT_ALLOWED");
    await expectError(asAlice.listSessions({ userId: bob }), Code.PermissionDenied, "USER_NOT_ALLOWED");
    await expectError(drain(asAlice.watchSessionEvents({})), Code.PermissionDenied, "USER_NOT_ALLOWED");
    await expectError(drain(asAlice.watchSessionEvents({ userId: bob })), Code.PermissionDenied, "USER_NOT_ALLOWED");
    await expectError(drain(asAlice.watchSessionEvents({ sessionId: bobs })), Code.PermissionDenied, "USER_NOT_ALLOWED");

    // Nothing of Alice's attempts reached Bob's session.
    expect(await eventCount(recordId)).toBe(0);
    const seen = await withKey("reader").getSession({ sessionId: bobs });
    expect(seen.session!.state).toBe(1);
    expect(seen.session!.isTrainingData).toBe(false);
    expect(await sessionCount(bob)).toBe(1);

    // Alice's own feed works.
    for await (const frame of asAlice.watchSessionEvents({ userId: alice, fromBeginning: true })) {
      if (frame.frame.case === "caughtUp") break;
    }
    await asAlice.endSession({ recordId: uniqueId("rec"), sessionId: own });
  });

  it("ends a Watch stream with UNAUTHENTICATED when its token expires, and one whose key is revoked", async () => {
    const userId = uniqueId("auth-expiring");
    // exp 28 s ago: still accepted (30 s clock tolerance) for about 2 more seconds.
    const nearlyExpired = await idp.sign(userId, { claims: { exp: Math.floor(Date.now() / 1000) - 28 } });
    const expiring = await expectError(drain(withToken(nearlyExpired).watchSessionEvents({ userId })), Code.Unauthenticated, "CREDENTIALS_INVALID");
    expect(expiring.rawMessage).toMatch(/expired/);
    // The verified-token cache does not outlive the token.
    await expectError(withToken(nearlyExpired).listSessions({ userId }), Code.Unauthenticated, "CREDENTIALS_INVALID");

    const doomed = await mintKey(app.sql, "reader");
    let caughtUp = false;
    const stream = (async () => {
      for await (const frame of withToken(doomed.token).watchSessionEvents({ userId })) {
        if (frame.frame.case === "caughtUp") caughtUp = true;
      }
    })();
    await waitFor(() => caughtUp, { message: "stream caught up" });
    await revokeKey(app.sql, doomed.keyId);
    const revoked = await expectError(stream, Code.Unauthenticated, "CREDENTIALS_INVALID");
    expect(revoked.rawMessage).toMatch(/revoked/);
    await expectError(withToken(doomed.token).getSession({ sessionId: UNKNOWN_SESSION }), Code.Unauthenticated, "CREDENTIALS_INVALID");
  });

  it("refuses an oversize request message with RESOURCE_EXHAUSTED and stores nothing", async () => {
    const userId = uniqueId("auth-oversize");
    const error = await withKey("writer")
      .startSession({ recordId: uniqueId("rec"), userId, metadata: { blob: "x".repeat(MAX_REQUEST_BYTES) } })
      .then(
        () => null,
        (e: unknown) => ConnectError.from(e),
      );
    expect(error).not.toBeNull();
    expect(Code[error!.code]).toBe("ResourceExhausted");
    expect(await sessionCount(userId)).toBe(0);
  });
});

describe("per-principal Watch streams", () => {
  const grpc = (token: string) =>
    createClient(SessionManagerService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}`, interceptors: [sendCredential(token)] }));

  /** Opens a stream and keeps it open; `ready` resolves once it caught up, or rejects with its error. */
  function hold(client: SessionClient, userId: string) {
    const controller = new AbortController();
    let caughtUp!: () => void;
    const ready = new Promise<void>((resolve) => (caughtUp = resolve));
    const done = (async () => {
      try {
        for await (const frame of client.watchSessionEvents({ userId }, { signal: controller.signal })) {
          if (frame.frame.case === "caughtUp") caughtUp();
        }
      } catch (error) {
        if (!controller.signal.aborted) throw error;
      }
    })();
    return {
      ready: Promise.race([ready, done]),
      close: async () => (controller.abort(), await done),
    };
  }

  /** Opens a stream that caught up, retrying while the principal's slots are still taken. */
  function admitted(client: SessionClient, userId: string) {
    return waitFor(
      async () => {
        const stream = hold(client, userId);
        try {
          await stream.ready;
          return stream;
        } catch (error) {
          if (ConnectError.from(error).code !== Code.ResourceExhausted) throw error;
          return null;
        }
      },
      { message: "a free stream slot" },
    );
  }

  it("refuses one stream over the cap with TOO_MANY_STREAMS, and releases slots on every way a stream ends (1,000 cycles)", async () => {
    const key = await mintKey(app.sql, "reader");
    const client = grpc(key.token);
    const userId = uniqueId("auth-cap");
    // 1,000 streams opened and closed (canceled by the client, or failed with a bad cursor).
    for (let i = 0; i < 1000; i++) {
      const failing = i % 10 === 0;
      const controller = new AbortController();
      const request = failing ? { userId, afterCursor: "not-a-cursor" } : { userId };
      const error = await (async () => {
        for await (const _frame of client.watchSessionEvents(request, { signal: controller.signal })) controller.abort();
      })().then(
        () => null,
        (e: unknown) => ConnectError.from(e),
      );
      // The server may not have seen the last cancels yet: their slots come back a moment later.
      if (error?.code === Code.ResourceExhausted) i--;
      else if (failing) expect(error?.findDetails(ErrorInfoSchema)[0]?.reason).toBe("INVALID_CURSOR");
      else expect(error?.code).toBe(Code.Canceled);
    }
    // The server learns of the last cancels a moment after the client sent them.
    const held = [];
    for (let i = 0; i < STREAMS_PER_PRINCIPAL; i++) held.push(await admitted(client, userId));
    const refused = await expectError(drain(client.watchSessionEvents({ userId })), Code.ResourceExhausted, "TOO_MANY_STREAMS");
    expect(refused.rawMessage).toMatch(/this credential/);
    // Another principal is not affected, and writes go on.
    const other = hold(grpc((await mintKey(app.sql, "reader")).token), userId);
    await other.ready;
    await grpc(keys.writer.token).startSession({ recordId: uniqueId("rec"), userId });
    // Once one stream ends, its slot comes back (the server learns of the cancel a moment later).
    await held[0]!.close();
    const again = await admitted(client, userId);
    await Promise.all([...held.slice(1), again, other].map((stream) => stream.close()));
  });
});

describe("without a credential", () => {
  it("serves gRPC health and server reflection", async () => {
    const { Health } = await import("../../gen/grpc/health/v1/health_pb.js");
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}` }));
    expect((await health.check({})).status).toBe(1);
  });
});

describe("the access log", () => {
  it("names the principal of each call and never holds a credential", async () => {
    const client = createClient(
      SessionManagerService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}`, interceptors: [sendCredential(keys.reader.token)] }),
    );
    await client.listSessions({ userId: uniqueId("auth-log") });
    await waitFor(() => logLines.some((line) => line.rpc === "ListSessions" && line.principal === `key:${keys.reader.keyId}`), {
      message: "a ListSessions line with the principal",
    });
    const secrets = Object.values(keys).map((key) => key.token.slice(-43));
    for (const line of rawLog) for (const secret of secrets) expect(line).not.toContain(secret);
    expect(rawLog.some((line) => line.includes("eyJ"))).toBe(false);
  });
});
