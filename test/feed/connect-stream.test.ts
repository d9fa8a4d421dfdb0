/**
 * WatchSessionEvents as a browser sees it: the Connect protocol over
 * HTTP/1.1 (no HTTP/2 pings), against the real server. An idle stream gets
 * heartbeat frames with cursors; a client's cancel or deadline ends the
 * stream quietly (no error in the server log); shutdown ends it with
 * UNAVAILABLE / SERVER_SHUTTING_DOWN.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { comparePositions, decodeCursor } from "../../src/domain/cursor.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { expectError } from "../support/rpc.js";
import { waitFor } from "../support/wait.js";

type LogLine = { level: number; msg: string; rpc?: string; code?: string };

/** Starts the app with a logger that keeps every line. */
async function startLoggedApp(): Promise<{ app: App; lines: LogLine[]; client: Client<typeof SessionManagerService> }> {
  const lines: LogLine[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const app = await startTestApp({ watchHeartbeatMs: 150 }, log);
  const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${app.port}`, httpVersion: "1.1" });
  return { app, lines, client: createClient(SessionManagerService, transport) };
}

const errorsIn = (lines: LogLine[]) => lines.filter((line) => line.level >= 50);
const watchLines = (lines: LogLine[]) => lines.filter((line) => line.msg === "rpc" && line.rpc === "WatchSessionEvents");

let served: Awaited<ReturnType<typeof startLoggedApp>>;
beforeAll(async () => {
  served = await startLoggedApp();
});
afterAll(() => served?.app.stop());

describe("WatchSessionEvents over Connect HTTP/1.1", () => {
  it("sends heartbeat frames with cursors on an idle stream, and ends quietly on cancel", async () => {
    const controller = new AbortController();
    const frames: { kind: string; cursor: string }[] = [];
    const failure = await (async () => {
      for await (const res of served.client.watchSessionEvents({ userId: uniqueId("idle") }, { signal: controller.signal })) {
        frames.push({ kind: res.frame.case ?? "", cursor: res.frame.case === "event" ? res.frame.value.cursor : (res.frame.value?.cursor ?? "") });
        if (frames.filter((frame) => frame.kind === "heartbeat").length === 3) controller.abort();
      }
    })().then(
      () => null,
      (error: unknown) => ConnectError.from(error),
    );
    expect(failure?.code).toBe(Code.Canceled);
    expect(frames.map((frame) => frame.kind)).toEqual(["caughtUp", "heartbeat", "heartbeat", "heartbeat"]);
    const positions = frames.map((frame) => decodeCursor(frame.cursor));
    positions.slice(1).forEach((position, i) => expect(comparePositions(position, positions[i]!)).toBeGreaterThanOrEqual(0));

    await waitFor(() => watchLines(served.lines).length === 1, { message: "the stream's rpc log line" });
    expect(watchLines(served.lines)[0]!.code).toBe("Canceled");
    expect(errorsIn(served.lines)).toEqual([]);
  });

  it("ends quietly at the client's deadline", async () => {
    const before = watchLines(served.lines).length;
    const call = (async () => {
      for await (const _ of served.client.watchSessionEvents({ userId: uniqueId("deadline") }, { timeoutMs: 400 })) {
        // Heartbeats only; the deadline ends the stream.
      }
    })();
    const error = await call.then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.DeadlineExceeded);
    await waitFor(() => watchLines(served.lines).length === before + 1, { message: "the stream's rpc log line" });
    expect(watchLines(served.lines)[before]!.level).toBeLessThan(50);
    expect(errorsIn(served.lines)).toEqual([]);
  });

  it("ends open streams with UNAVAILABLE / SERVER_SHUTTING_DOWN when the server stops", async () => {
    const other = await startLoggedApp();
    let caughtUp = false;
    const call = (async () => {
      for await (const res of other.client.watchSessionEvents({ userId: uniqueId("shutdown") })) {
        if (res.frame.case === "caughtUp") caughtUp = true;
      }
    })();
    await waitFor(() => caughtUp, { message: "stream caught up" });
    const stopping = other.app.stop();
    await expectError(call, Code.Unavailable, "SERVER_SHUTTING_DOWN");
    await stopping;
    expect(errorsIn(other.lines)).toEqual([]);
  });
});
