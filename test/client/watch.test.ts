/**
 * `client.watch` against real servers: it resumes from the last cursor
 * across a replica restart (new process, same database) and a dropped
 * connection, with no event skipped or repeated; it fetches a fresh token
 * once when a stream ends with UNAUTHENTICATED (an expired JWT) and resumes;
 * and it stops on errors retrying cannot fix.
 */
import { type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import type { Config } from "../../src/config.js";
import { createSessionManagerClient, SessionManagerError, type SessionEvent, type WatchSessionEventsResponse } from "../../src/client/index.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { TEST_AUDIENCE, TEST_ISSUER, createTestIdentityProvider, mintKey, type TestIdentityProvider } from "../support/credentials.js";
import { waitFor } from "../support/wait.js";
import { startProxy } from "./proxy.js";

let idp: TestIdentityProvider;
let auth: Partial<Config>;
let app: App;
let writer: string;
let reader: string;

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  auth = { auth: "required", authCacheMs: 200, jwtPublicKeyFile: idp.publicKeyFile, jwtIssuer: TEST_ISSUER, jwtAudience: TEST_AUDIENCE };
  app = await startTestApp(auth);
  writer = (await mintKey(app.sql, "writer")).token;
  reader = (await mintKey(app.sql, "reader")).token;
});

afterAll(async () => {
  await app?.stop();
});

function writerClient() {
  return createSessionManagerClient({ baseUrl: `http://127.0.0.1:${app.port}`, credential: writer });
}

/** Counts the streams a client opens. */
function countStreams(counter: { streams: number }): Interceptor {
  return (next) => (req) => {
    if (req.stream) counter.streams += 1;
    return next(req);
  };
}

describe("watch", () => {
  it("resumes across a replica restart and a dropped connection without skipping or repeating an event", async () => {
    const writes = writerClient();
    const userId = uniqueId("watch-restart");
    let replica: App | undefined = await startTestApp(auth);
    const proxy = await startProxy(replica.port);
    const stop = new AbortController();
    try {
      const watcher = createSessionManagerClient({ baseUrl: `http://127.0.0.1:${proxy.port}`, transport: "grpc", credential: reader });
      const received: SessionEvent[] = [];
      const reconnects: (string | null)[] = [];
      const stream = watcher.watch({
        userId,
        fromBeginning: true,
        signal: stop.signal,
        backoff: { initialMs: 50, maxMs: 500 },
        onReconnect: (error) => reconnects.push(error === null ? null : error.codeName),
      });
      const consuming = (async () => {
        for await (const event of stream) received.push(event);
      })();
      const written: SessionEvent[] = [];
      const { session, event } = await writes.startSession({ userId });
      written.push(event!);
      const append = async (n: number) => {
        for (let i = 0; i < n; i += 1) {
          written.push((await writes.appendSessionEvent({ sessionId: session!.sessionId, type: "care.watch.test", source: "t", payload: { i } })).event!);
        }
      };
      const receivedAll = (message: string) => waitFor(() => received.length >= written.length, { message: () => `${message}: ${received.length} of ${written.length}` });

      await append(2);
      await receivedAll("events before the restart");

      await replica.stop(); // its streams end with UNAVAILABLE
      replica = undefined;
      await append(2); // written through another replica while the watcher's is down
      await waitFor(() => reconnects.length >= 2, { message: "reconnect attempts while the replica is down" });
      replica = await startTestApp(auth); // a new process on the same database, on another port
      proxy.setUpstream(replica.port);
      await receivedAll("events written while the replica was down");

      await append(1);
      await receivedAll("an event after the restart");
      proxy.cutAll(); // the connection drops without a goodbye
      await append(2);
      await receivedAll("events after the dropped connection");

      expect(received.map((e) => e.eventId)).toEqual(written.map((e) => e.eventId));
      expect(received.map((e) => e.seq)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
      expect(reconnects.length).toBeGreaterThanOrEqual(3);
      expect(stream.cursor).not.toBe("");
      stop.abort();
      await consuming; // an abort ends the iteration without an error
    } finally {
      stop.abort();
      await proxy.close();
      await replica?.stop();
    }
  });

  it("resumes after the last heartbeat's cursor, not the last event's, and continues later from stream.cursor", async () => {
    const writes = writerClient();
    const userId = uniqueId("watch-cursor");
    const watcher = createSessionManagerClient({ baseUrl: `http://127.0.0.1:${app.port}`, credential: reader });
    const frames: WatchSessionEventsResponse[] = [];
    const stream = watcher.watch({ userId, types: ["care.kept"], fromBeginning: true, frames: true });
    const { session } = await writes.startSession({ userId });
    const kept = await writes.appendSessionEvent({ sessionId: session!.sessionId, type: "care.kept", source: "t" });
    await writes.appendSessionEvent({ sessionId: session!.sessionId, type: "care.skipped", source: "t" });
    for await (const frame of stream) {
      frames.push(frame);
      // A heartbeat after the skipped event moves the cursor past it.
      if (frame.frame.case === "heartbeat" && frame.frame.value.cursor !== kept.event!.cursor) break;
    }
    expect(frames.filter((f) => f.frame.case === "event").map((f) => (f.frame.value as SessionEvent).eventId)).toEqual([kept.event!.eventId]);
    const last = frames.at(-1)!;
    expect(stream.cursor).toBe(last.frame.case === "heartbeat" ? last.frame.value.cursor : "");

    const later = await writes.appendSessionEvent({ sessionId: session!.sessionId, type: "care.kept", source: "t" });
    for await (const event of watcher.watch({ userId, types: ["care.kept"], after: stream.cursor })) {
      expect(event.eventId).toBe(later.event!.eventId);
      break;
    }
  });

  it("fetches a fresh token once when the stream's JWT expires, and resumes without losing an event", async () => {
    const writes = writerClient();
    const userId = uniqueId("watch-refresh");
    // exp 28 s ago: still accepted (30 s clock tolerance) for about 2 more seconds.
    const nearlyExpired = await idp.sign(userId, { claims: { exp: Math.floor(Date.now() / 1000) - 28 } });
    const asked: boolean[] = [];
    const watcher = createSessionManagerClient({
      baseUrl: `http://127.0.0.1:${app.port}`,
      credential: async ({ refresh }) => {
        asked.push(refresh);
        return asked.length === 1 ? nearlyExpired : idp.sign(userId);
      },
    });
    const reasons: string[] = [];
    const frames: WatchSessionEventsResponse[] = [];
    const stop = new AbortController();
    const consuming = (async () => {
      for await (const frame of watcher.watch({ userId, frames: true, signal: stop.signal, onReconnect: (error) => reasons.push(error?.reason ?? "") })) {
        frames.push(frame);
      }
    })();
    const events = () => frames.filter((f) => f.frame.case === "event").map((f) => (f.frame.value as SessionEvent).eventId);
    await waitFor(() => frames.some((f) => f.frame.case === "caughtUp"), { message: "the first stream to catch up" });
    const { session, event: started } = await writes.startSession({ userId });
    await waitFor(() => events().length === 1, { message: "the first event" });

    await waitFor(() => reasons.includes("CREDENTIALS_INVALID"), { message: "the stream to end with UNAUTHENTICATED" });
    const appended = await writes.appendSessionEvent({ sessionId: session!.sessionId, type: "care.after.refresh", source: "t" });
    await waitFor(() => events().length === 2, { message: "the event after the refresh" });
    expect(events()).toEqual([started!.eventId, appended.event!.eventId]);
    expect(asked.slice(0, 2)).toEqual([false, true]);
    stop.abort();
    await consuming;
  });

  it("stops on a second UNAUTHENTICATED before any frame, with the refreshed token refused too", async () => {
    const userId = uniqueId("watch-expired");
    const asked: boolean[] = [];
    const expired = await idp.sign(userId, { claims: { exp: Math.floor(Date.now() / 1000) - 120 } });
    const watcher = createSessionManagerClient({
      baseUrl: `http://127.0.0.1:${app.port}`,
      transport: "grpc-web",
      credential: ({ refresh }) => (asked.push(refresh), expired),
    });
    const error = await (async () => {
      for await (const _ of watcher.watch({ userId })) throw new Error("no frame expected");
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionManagerError);
    expect([(error as SessionManagerError).codeName, (error as SessionManagerError).reason]).toEqual(["UNAUTHENTICATED", "CREDENTIALS_INVALID"]);
    expect(asked).toEqual([false, true]);
  });

  it("stops at once on INVALID_ARGUMENT and PERMISSION_DENIED", async () => {
    const counter = { streams: 0 };
    const userId = uniqueId("watch-final");
    const asUser = createSessionManagerClient({
      baseUrl: `http://127.0.0.1:${app.port}`,
      transport: "grpc",
      credential: () => idp.sign(userId),
      interceptors: [countStreams(counter)],
    });
    const drain = async (stream: AsyncIterable<unknown>) => {
      for await (const _ of stream) {
        // nothing is expected
      }
    };
    const invalid = (await drain(asUser.watch({ userId, after: "not-a-cursor" })).catch((e: unknown) => e)) as SessionManagerError;
    expect([invalid.codeName, invalid.reason]).toEqual(["INVALID_ARGUMENT", "INVALID_CURSOR"]);
    expect(counter.streams).toBe(1);
    const denied = (await drain(asUser.watch({ userId: uniqueId("someone-else") })).catch((e: unknown) => e)) as SessionManagerError;
    expect([denied.codeName, denied.reason]).toEqual(["PERMISSION_DENIED", "USER_NOT_ALLOWED"]);
    expect(counter.streams).toBe(2);
  });
});
