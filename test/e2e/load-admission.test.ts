/**
 * Admission by load (WATCH_ADMISSION_DELAY_MS): while the replica's event
 * loop lags, new WatchSessionEvents streams are refused with
 * RESOURCE_EXHAUSTED / TOO_MANY_STREAMS (metadata.scope "load", RetryInfo),
 * over gRPC (grpc-js) and Connect alike, while writes keep succeeding and the
 * streams already open keep receiving; once the lag is gone, streams are
 * admitted again. The app runs in this process, so the test makes the lag
 * itself: a timer that keeps the event loop busy.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { errorMetadata, expectError, type SessionClient } from "../support/rpc.js";
import { openStream } from "../support/streams.js";
import { waitFor } from "../support/wait.js";

const MAX_DELAY_MS = 25;
/** Each tick of the hog blocks the loop this long, so the p99 delay stays above MAX_DELAY_MS. */
const BLOCK_MS = 60;

let app: App;

beforeAll(async () => {
  app = await startTestApp({ watchAdmissionDelayMs: MAX_DELAY_MS });
});

afterAll(async () => {
  await app?.stop();
});

/** Blocks the event loop for BLOCK_MS every 40 ms until stopped: a replica that cannot keep up. */
function hogEventLoop(): () => void {
  const timer = setInterval(() => {
    const until = performance.now() + BLOCK_MS;
    while (performance.now() < until) {
      // busy: nothing else runs on this loop meanwhile
    }
  }, 40);
  return () => clearInterval(timer);
}

/** Opens a stream of `userId`: "admitted" once it caught up (it is closed again), or the error that refused it. */
async function tryStream(client: SessionClient, userId: string): Promise<"admitted" | ConnectError> {
  try {
    for await (const frame of client.watchSessionEvents({ userId })) {
      if (frame.frame.case === "caughtUp") return "admitted";
    }
    throw new Error("the stream ended before it caught up");
  } catch (error) {
    return ConnectError.from(error);
  }
}

describe("load admission", () => {
  for (const protocol of ["grpc", "connect"] as const) {
    it(`refuses new streams while the event loop lags, keeps writes and open streams going, admits again (${protocol})`, async () => {
      const baseUrl = `http://127.0.0.1:${app.port}`;
      const client = createClient(
        SessionManagerService,
        protocol === "grpc" ? createGrpcTransport({ baseUrl }) : createConnectTransport({ baseUrl, httpVersion: "1.1" }),
      );
      const userId = uniqueId("load");
      // A lagging window left by an earlier test still refuses streams for up to a second.
      await waitFor(async () => (await tryStream(client, userId)) === "admitted", { timeoutMs: 15_000, intervalMs: 100, message: "the replica to admit streams" });
      const { session } = await client.startSession({ recordId: uniqueId("rec"), userId });
      const open = openStream(client, userId);
      await open.ready();

      const stopHog = hogEventLoop();
      try {
        // The monitor judges whole windows of one second: wait for the first lagging one.
        const refusal = await waitFor(
          async () => {
            const outcome = await tryStream(client, userId);
            return outcome !== "admitted" && outcome;
          },
          { timeoutMs: 15_000, intervalMs: 50, message: "a new stream to be refused" },
        );
        const refused = await expectError(Promise.reject(refusal), Code.ResourceExhausted, "TOO_MANY_STREAMS");
        expect(errorMetadata(refused).scope).toBe("load");
        expect(Number(errorMetadata(refused).delay_ms)).toBeGreaterThan(MAX_DELAY_MS);
        expect(refused.findDetails(RetryInfoSchema)).toHaveLength(1);

        // Writes are never refused for load, and the open stream keeps receiving.
        const appended: string[] = [];
        for (let i = 0; i < 5; i++) {
          const { event } = await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: session!.sessionId, type: "care.under-load", source: "t" });
          appended.push(event!.eventId);
        }
        await waitFor(() => appended.every((id) => open.events.includes(id)), { timeoutMs: 15_000, message: "the open stream to receive the appends" });
      } finally {
        stopHog();
      }

      await waitFor(async () => (await tryStream(client, userId)) === "admitted", { timeoutMs: 15_000, intervalMs: 100, message: "streams to be admitted again" });
      await open.close();
    });
  }
});
