/**
 * `session-manager tail` as a child process against real servers: prints a
 * user's events in order, resumes with --after without repeats, prints
 * frames with --frames over gRPC, reconnects after the server goes away,
 * resuming from the last cursor it received, sends SESSION_MANAGER_CREDENTIAL,
 * and exits 1 on an error retrying cannot fix.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import type { App } from "../../src/app.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { encodeCursor } from "../../src/domain/cursor.js";
import { mintKey } from "../support/credentials.js";
import { runCli, startCli, type RunningCli } from "./cli-process.js";
import { freePort } from "../support/ports.js";
import { sleep } from "../support/wait.js";

interface PrintedEvent {
  eventId: string;
  cursor: string;
  userId: string;
  seq: string;
  type: string;
}

let app: App;
let client: Client<typeof SessionManagerService>;
const running: RunningCli[] = [];

beforeAll(async () => {
  app = await startTestApp();
  client = clientFor(app.port);
});

afterAll(async () => {
  await Promise.all(running.map((cli) => cli.stop("SIGKILL")));
  await app?.stop();
});

function clientFor(port: number): Client<typeof SessionManagerService> {
  return createClient(SessionManagerService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }));
}

function tail(args: string[]): RunningCli {
  const cli = startCli(["tail", ...args]);
  running.push(cli);
  return cli;
}

/** Starts a session and appends `appends` events; returns them in order. */
async function writeEvents(userId: string, appends: number, sessionId?: string): Promise<SessionEvent[]> {
  const events: SessionEvent[] = [];
  if (sessionId === undefined) {
    const started = await client.startSession({ recordId: uniqueId("rec"), userId });
    sessionId = started.session!.sessionId;
    events.push(started.event!);
  }
  for (let i = 0; i < appends; i += 1) {
    const appended = await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.tail.test", source: "tail-test" });
    events.push(appended.event!);
  }
  return events;
}

function printedEvents(lines: string[]): PrintedEvent[] {
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => "eventId" in line) as unknown as PrintedEvent[];
}

function eventCount(count: number) {
  return (lines: string[]) => printedEvents(lines).length >= count;
}

describe("tail", () => {
  it("prints a user's events in order from the beginning, then resumes with --after without repeats", async () => {
    const userId = uniqueId("tail-user");
    const other = uniqueId("tail-other");
    const first = await writeEvents(userId, 3);
    await writeEvents(other, 1);
    const url = `http://127.0.0.1:${app.port}`;

    const cli = tail(["--url", url, "--from-beginning", "--user", userId]);
    await cli.waitFor(eventCount(4));
    const live = await writeEvents(userId, 1, first[0]!.sessionId);
    await cli.waitFor(eventCount(5));
    expect(await cli.stop("SIGINT")).toBe(0);

    const printed = printedEvents(cli.lines);
    expect(printed.map((event) => event.eventId)).toEqual([...first, ...live].map((event) => event.eventId));
    expect(printed.map((event) => event.seq)).toEqual(["1", "2", "3", "4", "5"]);
    expect(printed.every((event) => event.userId === userId)).toBe(true);
    expect(cli.lines).toHaveLength(5); // no frames without --frames

    const more = await writeEvents(userId, 2, first[0]!.sessionId);
    const resumed = tail(["--url", url, "--user", userId, "--after", printed.at(-1)!.cursor]);
    await resumed.waitFor(eventCount(2));
    await sleep(300); // proves no event is repeated within 300 ms
    expect(await resumed.stop("SIGINT")).toBe(0);
    expect(printedEvents(resumed.lines).map((event) => event.eventId)).toEqual(more.map((event) => event.eventId));
  });

  it("prints caughtUp and heartbeat frames with --frames over gRPC, filtered by type prefix", async () => {
    const userId = uniqueId("tail-frames-user");
    const events = await writeEvents(userId, 2);

    const cli = tail(["--url", `http://127.0.0.1:${app.port}`, "--protocol", "grpc", "--frames", "--from-beginning", "--user", userId, "--type", "care.*"]);
    await cli.waitFor((lines) => lines.some((line) => line.includes('"heartbeat"')), 10_000);
    expect(await cli.stop("SIGTERM")).toBe(0);

    const frames = cli.lines.map((line) => JSON.parse(line) as Record<string, { cursor: string }>);
    expect(printedEvents(cli.lines).map((event) => event.eventId)).toEqual(events.slice(1).map((event) => event.eventId));
    const caughtUp = frames.findIndex((frame) => "caughtUp" in frame);
    expect(caughtUp).toBe(2);
    expect(frames[caughtUp]!.caughtUp!.cursor).not.toBe("");
    expect(frames.slice(caughtUp + 1).every((frame) => "heartbeat" in frame && frame.heartbeat!.cursor !== "")).toBe(true);
  });

  it("sends the credential from SESSION_MANAGER_CREDENTIAL, and exits 1 on an error retrying cannot fix", async () => {
    const secured = await startTestApp({ auth: "required" });
    try {
      const url = `http://127.0.0.1:${secured.port}`;
      const key = await mintKey(secured.sql, "reader");
      const userId = uniqueId("tail-auth-user");
      const events = await writeEvents(userId, 1);
      const cli = startCli(["tail", "--url", url, "--from-beginning", "--user", userId], { SESSION_MANAGER_CREDENTIAL: `${key.token}\n` });
      running.push(cli);
      await cli.waitFor(eventCount(2));
      expect(await cli.stop("SIGINT")).toBe(0);
      expect(printedEvents(cli.lines).map((event) => event.eventId)).toEqual(events.map((event) => event.eventId));

      const refused = await runCli(["tail", "--url", url, "--user", userId], { SESSION_MANAGER_CREDENTIAL: "" });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/UNAUTHENTICATED CREDENTIALS_MISSING/);
      // A well-formed cursor ahead of the database: the server answers INVALID_CURSOR.
      const ahead = encodeCursor({ txId: 2n ** 62n, id: 1n });
      const invalid = await runCli(["tail", "--url", url, "--user", userId, "--after", ahead], { SESSION_MANAGER_CREDENTIAL: key.token });
      expect(invalid.code).toBe(1);
      expect(invalid.stderr).toMatch(/INVALID_ARGUMENT INVALID_CURSOR/);
    } finally {
      await secured.stop();
    }
  });

  it("reconnects after its server stops and resumes from the last cursor it received", async () => {
    const userId = uniqueId("tail-reconnect-user");
    const port = await freePort();
    let server: App | undefined = await startTestApp({ port });
    try {
      const before = await writeEvents(userId, 2);
      const cli = tail(["--url", `http://127.0.0.1:${port}`, "--from-beginning", "--user", userId]);
      await cli.waitFor(eventCount(3));

      await server.stop(); // its streams end with UNAVAILABLE
      server = undefined;
      const during = await writeEvents(userId, 2, before[0]!.sessionId);
      await cli.waitFor(() => cli.stderr().includes("reconnecting"));
      server = await startTestApp({ port });
      await cli.waitFor(eventCount(5));
      const after = await writeEvents(userId, 1, before[0]!.sessionId);
      await cli.waitFor(eventCount(6));
      expect(await cli.stop("SIGINT")).toBe(0);

      const printed = printedEvents(cli.lines).map((event) => event.eventId);
      expect(printed).toEqual([...before, ...during, ...after].map((event) => event.eventId));
    } finally {
      await server?.stop();
    }
  });
});
