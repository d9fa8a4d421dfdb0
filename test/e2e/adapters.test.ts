/**
 * The two gRPC adapters (grpc-js on h2c, and connect-node with
 * H2C_ADAPTER=connect) run the same handlers and interceptors: every error
 * reason reachable from a client arrives with the same code, message and
 * detail bytes from both. Admission control: a replica at WATCH_STREAMS_MAX
 * refuses new streams with TOO_MANY_STREAMS and RetryInfo, keeps accepting
 * writes, and admits again once a stream ends. Both replicas require
 * credentials, as in production, so the auth reasons are compared too.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { REASONS, type Reason } from "../../src/domain/errors.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { TEST_AUDIENCE, TEST_ISSUER, createTestIdentityProvider, mintKey, sendCredential, type TestIdentityProvider } from "../support/credentials.js";
import { errorMetadata, expectError } from "../support/rpc.js";
import { firstStreamError, openStream } from "../support/streams.js";
import { waitFor } from "../support/wait.js";

type SessionClient = Client<typeof SessionManagerService>;
const STREAMS_MAX = 2;
const UNKNOWN_SESSION = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";

let grpcJsApp: App;
let connectApp: App;
let viaGrpcJs: Clients;
let viaConnect: Clients;
let idp: TestIdentityProvider;
let tokens: { admin: string; reader: string };

/** One adapter's clients: by credential. `as(token)` sends any token. */
interface Clients {
  admin: SessionClient;
  reader: SessionClient;
  anonymous: SessionClient;
  as(token: string): SessionClient;
}

function clientsOf(app: App): Clients {
  const as = (token: string | null) =>
    createClient(
      SessionManagerService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}`, interceptors: token === null ? [] : [sendCredential(token)] }),
    );
  return { admin: as(tokens.admin), reader: as(tokens.reader), anonymous: as(null), as };
}

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  const auth = { auth: "required", jwtPublicKeyFile: idp.publicKeyFile, jwtIssuer: TEST_ISSUER, jwtAudience: TEST_AUDIENCE } as const;
  [grpcJsApp, connectApp] = await Promise.all([
    startTestApp({ ...auth, watchStreamsMax: STREAMS_MAX }),
    startTestApp({ ...auth, watchStreamsMax: STREAMS_MAX, h2cAdapter: "connect" }),
  ]);
  tokens = { admin: (await mintKey(grpcJsApp.sql, "admin")).token, reader: (await mintKey(grpcJsApp.sql, "reader")).token };
  viaGrpcJs = clientsOf(grpcJsApp);
  viaConnect = clientsOf(connectApp);
});

afterAll(async () => {
  await Promise.all([grpcJsApp?.stop(), connectApp?.stop()]);
});

/** Returns what a client learns from a failed call: code, message and every detail's bytes. */
async function failure(call: Promise<unknown>): Promise<{ code: string; message: string; details: string[] }> {
  const error = await call.then(
    () => null,
    (e: unknown) => ConnectError.from(e),
  );
  expect(error, "the call should fail").not.toBeNull();
  return {
    code: Code[error!.code],
    message: error!.rawMessage,
    details: error!.details.map((detail) => ("type" in detail ? `${detail.type}:${Buffer.from(detail.value).toString("base64")}` : "outgoing")),
  };
}

describe("the same answers from both adapters", () => {
  it("for every reason a client can provoke", async () => {
    const userId = uniqueId("adapters");
    const setup = viaGrpcJs.admin;
    const { session } = await setup.startSession({ recordId: uniqueId("rec"), userId });
    const open = session!.sessionId;
    const paused = await setup.startSession({ recordId: uniqueId("rec"), userId: uniqueId("adapters-paused") });
    await setup.pauseSession({ recordId: uniqueId("rec"), sessionId: paused.session!.sessionId });
    const ended = await setup.startSession({ recordId: uniqueId("rec"), userId: uniqueId("adapters-ended") });
    await setup.endSession({ recordId: uniqueId("rec"), sessionId: ended.session!.sessionId });
    const reused = uniqueId("rec");
    await setup.appendSessionEvent({ recordId: reused, sessionId: open, type: "care.a", source: "t" });
    const someoneElse = await idp.sign(uniqueId("adapters-other"));

    type Case = (clients: Clients) => Promise<unknown>;
    const as = (provoke: (client: SessionClient) => Promise<unknown>): Case => (clients) => provoke(clients.admin);
    const cases: Partial<Record<Reason, Case>> = {
      CREDENTIALS_MISSING: (c) => c.anonymous.getSession({ sessionId: open }),
      CREDENTIALS_INVALID: (c) => c.as("smk_nope").getSession({ sessionId: open }),
      ROLE_NOT_ALLOWED: (c) => c.reader.heartbeatSession({ sessionId: open }),
      USER_NOT_ALLOWED: (c) => c.as(someoneElse).getSession({ sessionId: open }),
      INVALID_REQUEST: as((c) => c.startSession({ recordId: uniqueId("rec"), userId: "not valid!" })),
      INVALID_PAGE_TOKEN: as((c) => c.listSessions({ pageToken: "forged" })),
      INVALID_CURSOR: as((c) => firstStreamError(c, { userId, afterCursor: "not-a-cursor" })),
      RESERVED_EVENT_TYPE: as((c) => c.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: open, type: "session.fake", source: "t" })),
      SESSION_NOT_FOUND: as((c) => c.getSession({ sessionId: UNKNOWN_SESSION })),
      RECORD_ID_REUSED: as((c) => c.appendSessionEvent({ recordId: reused, sessionId: open, type: "care.other", source: "t" })),
      ACTIVE_SESSION_EXISTS: as((c) => c.startSession({ recordId: uniqueId("rec"), userId })),
      SESSION_ENDED: as((c) => c.heartbeatSession({ sessionId: ended.session!.sessionId })),
      SESSION_PAUSED: as((c) => c.heartbeatSession({ sessionId: paused.session!.sessionId })),
    };
    for (const [reason, provoke] of Object.entries(cases)) {
      const fromGrpcJs = await failure(provoke(viaGrpcJs));
      const fromConnect = await failure(provoke(viaConnect));
      expect(fromGrpcJs, reason).toEqual(fromConnect);
      expect(fromGrpcJs.details.length, reason).toBeGreaterThan(0);
    }
    // Covered elsewhere, not provoked here: CURSOR_EXPIRED (needs a prune), DATABASE_UNAVAILABLE
    // (needs PostgreSQL down), SERVER_SHUTTING_DOWN (needs a stop); TOO_MANY_STREAMS below.
    expect(REASONS.length - Object.keys(cases).length).toBe(4);
  });
});

describe("admission control", () => {
  for (const [name, appOf] of [
    ["grpc-js", () => grpcJsApp],
    ["connect-node over HTTP/1.1", () => connectApp],
  ] as const) {
    it(`refuses streams over WATCH_STREAMS_MAX with TOO_MANY_STREAMS and RetryInfo, keeps writing, admits again (${name})`, async () => {
      const app = appOf();
      const baseUrl = `http://127.0.0.1:${app.port}`;
      const client = createClient(
        SessionManagerService,
        name === "grpc-js"
          ? createGrpcTransport({ baseUrl, interceptors: [sendCredential(tokens.admin)] })
          : createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [sendCredential(tokens.admin)] }),
      );
      const userId = uniqueId("admission");
      const streams = Array.from({ length: STREAMS_MAX }, () => openStream(client, userId));
      await Promise.all(streams.map((stream) => stream.ready()));

      const refused = await expectError(firstStreamError(client, { userId }), Code.ResourceExhausted, "TOO_MANY_STREAMS");
      expect(errorMetadata(refused)).toEqual({ limit: String(STREAMS_MAX), scope: "replica" });
      const [retry] = refused.findDetails(RetryInfoSchema);
      expect(Number(retry?.retryDelay?.seconds ?? 0) * 1000 + (retry?.retryDelay?.nanos ?? 0) / 1e6).toBeGreaterThan(0);

      const { session } = await client.startSession({ recordId: uniqueId("rec"), userId });
      for (let i = 0; i < 20; i++) {
        await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: session!.sessionId, type: "care.while-full", source: "t" });
      }

      await streams[0]!.close();
      // The server releases the slot when it sees the cancel, a moment after the client.
      await waitFor(() => app.feed.stats().subscribers < STREAMS_MAX, { message: "the closed stream's slot to be released" });
      const again = openStream(client, userId);
      await again.ready();
      await Promise.all([again.close(), ...streams.slice(1).map((stream) => stream.close())]);
    });
  }
});
