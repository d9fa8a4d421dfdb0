/**
 * `session-manager export` as a child process against the test database:
 * CloudEvents fields, seq order for a session, feed order for a user and a
 * cursor range, --training-data-only, --out, and usage errors.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import type { Sql } from "../../src/db/database.js";
import { comparePositions, decodeCursor } from "../../src/domain/cursor.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { createInMemoryClient, type SessionClient } from "../support/rpc.js";
import { runCli } from "./cli-process.js";

interface ExportedLine {
  specversion: string;
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: string;
  data: unknown;
  sessionid: string;
  userid: string;
  seq: number;
  cursor: string;
  recordid: string;
  receivetime: string;
  performerid?: string;
  hash: string;
}

let sql: Sql;
let client: SessionClient;
let outDir: string;

beforeAll(() => {
  sql = openTestDatabase(4);
  client = createInMemoryClient(sql).client;
  outDir = mkdtempSync(join(tmpdir(), "session-manager-export-"));
});

afterAll(async () => {
  await sql?.end();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

/** Writes one session for `userId`: started, `appends` events, ended; returns its events in seq order. */
async function writeSession(userId: string, appends: number, isTrainingData = false): Promise<SessionEvent[]> {
  const started = await client.startSession({ recordId: uniqueId("rec"), userId, performerId: "nurse-1", isTrainingData });
  const sessionId = started.session!.sessionId;
  const events = [started.event!];
  for (let i = 0; i < appends; i += 1) {
    const appended = await client.appendSessionEvent({
      recordId: uniqueId("rec"),
      sessionId,
      type: "care.input.received",
      source: "cli-test",
      performerId: i % 2 === 0 ? "" : "agent-2",
      payload: { text: `hello ${i}`, n: i },
    });
    events.push(appended.event!);
  }
  const ended = await client.endSession({ recordId: uniqueId("rec"), sessionId });
  events.push(ended.event!);
  return events;
}

function parseLines(stdout: string): ExportedLine[] {
  return stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as ExportedLine);
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

async function feedOrderOf(userIds: string[]): Promise<string[]> {
  const rows = await sql<{ event_id: string }[]>`
    select event_id
    from session_events
    where user_id = any(${userIds}::text[])
    order by tx_id, id
  `;
  return rows.map((row) => row.event_id);
}

describe("export", () => {
  it("exports a session as CloudEvents in seq order and reports the count", async () => {
    const userId = uniqueId("export-session-user");
    const events = await writeSession(userId, 3);

    const result = await runCli(["export", "--session", events[0]!.sessionId]);

    expect(result.code, result.stderr).toBe(0);
    expect(lastLine(result.stderr)).toBe("exported 5 events");
    const lines = parseLines(result.stdout);
    expect(lines.map((line) => line.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(lines.map((line) => line.id)).toEqual(events.map((event) => event.eventId));
    for (const [index, line] of lines.entries()) {
      const event = events[index]!;
      expect(line).toMatchObject({
        specversion: "1.0",
        id: event.eventId,
        source: `/sessionmanager/${event.source}`,
        type: event.type,
        subject: event.sessionId,
        datacontenttype: "application/json",
        sessionid: event.sessionId,
        userid: userId,
        cursor: event.cursor,
        recordid: event.recordId,
      });
      expect(Date.parse(line.time)).toBe(Number(event.eventTime!.seconds) * 1000 + event.eventTime!.nanos / 1e6);
      expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Date.parse(line.receivetime)).toBe(Number(event.receiveTime!.seconds) * 1000 + event.receiveTime!.nanos / 1e6);
      expect(line.data).toEqual(event.payload ?? {});
      expect(line.performerid).toBe(event.performerId === "" ? undefined : event.performerId);
      for (const name of Object.keys(line)) expect(name).toMatch(/^[a-z0-9]{1,20}$/);
    }
    const hashes = await sql<{ hash: string }[]>`
      select hash
      from session_events
      where user_id = ${userId}
      order by seq
    `;
    expect(lines.map((line) => line.hash)).toEqual(hashes.map((row) => row.hash));
    expect(lines[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(lines[0]!.source).toBe("/sessionmanager/session_manager");
    expect(lines[1]!.source).toBe("/sessionmanager/cli-test");
    expect(lines[1]!.data).toEqual({ text: "hello 0", n: 0 });
    expect(lines[2]!.performerid).toBe("agent-2");
  });

  it("writes the same lines to --out as to stdout", async () => {
    const events = await writeSession(uniqueId("export-out-user"), 2);
    const file = join(outDir, "timeline.jsonl");

    const toFile = await runCli(["export", "--session", events[0]!.sessionId, "--out", file]);
    const toStdout = await runCli(["export", "--session", events[0]!.sessionId]);

    expect(toFile.code, toFile.stderr).toBe(0);
    expect(toFile.stdout).toBe("");
    expect(lastLine(toFile.stderr)).toBe("exported 4 events");
    expect(readFileSync(file, "utf8")).toBe(toStdout.stdout);
  });

  it("exports a user's events in feed order, and nobody else's", async () => {
    const userId = uniqueId("export-user");
    const otherId = uniqueId("export-other");
    await writeSession(userId, 2);
    await writeSession(otherId, 1);
    await writeSession(userId, 3);

    const result = await runCli(["export", "--user", userId]);

    expect(result.code, result.stderr).toBe(0);
    const lines = parseLines(result.stdout);
    expect(lines.map((line) => line.id)).toEqual(await feedOrderOf([userId]));
    expect(lines).toHaveLength(9);
    expect(new Set(lines.map((line) => line.userid))).toEqual(new Set([userId]));
    expect(lastLine(result.stderr)).toBe("exported 9 events");
  });

  it("exports a cursor range (after, until] in feed order", async () => {
    const first = uniqueId("export-range-a");
    const second = uniqueId("export-range-b");
    const before = await writeSession(first, 1);
    const inside = [...(await writeSession(second, 2)), ...(await writeSession(first, 1))];
    await writeSession(second, 1);
    const after = before.at(-1)!.cursor;
    const until = inside.at(-1)!.cursor;

    const result = await runCli(["export", "--after", after, "--until", until]);

    expect(result.code, result.stderr).toBe(0);
    const lines = parseLines(result.stdout);
    // Other test files write to the same database: keep our users' lines,
    // and check that everything exported lies in the range, in order.
    const ours = lines.filter((line) => line.userid === first || line.userid === second);
    expect(ours.map((line) => line.id)).toEqual(inside.map((event) => event.eventId));
    const positions = lines.map((line) => decodeCursor(line.cursor));
    expect(comparePositions(positions[0]!, decodeCursor(after))).toBeGreaterThan(0);
    expect(comparePositions(positions.at(-1)!, decodeCursor(until))).toBe(0);
    for (let i = 1; i < positions.length; i += 1) {
      expect(comparePositions(positions[i - 1]!, positions[i]!), `line ${i + 1} out of feed order`).toBeLessThan(0);
    }
    expect(lastLine(result.stderr)).toBe(`exported ${lines.length} events`);
  });

  it("keeps only training-data sessions with --training-data-only", async () => {
    const userId = uniqueId("export-training-user");
    await writeSession(userId, 2, false);
    const training = await writeSession(userId, 1, true);

    const all = await runCli(["export", "--user", userId]);
    const onlyTraining = await runCli(["export", "--user", userId, "--training-data-only"]);
    const session = await runCli(["export", "--session", training[0]!.sessionId, "--training-data-only"]);

    expect(parseLines(all.stdout)).toHaveLength(7);
    expect(onlyTraining.code, onlyTraining.stderr).toBe(0);
    expect(parseLines(onlyTraining.stdout).map((line) => line.id)).toEqual(training.map((event) => event.eventId));
    expect(lastLine(onlyTraining.stderr)).toBe("exported 3 events");
    expect(parseLines(session.stdout).map((line) => line.id)).toEqual(training.map((event) => event.eventId));
  });

  it("fails with status 1 for an unknown session", async () => {
    const result = await runCli(["export", "--session", "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV"]);

    expect(result.code).toBe(1);
    expect(result.stderr).toContain("no session sess_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    expect(result.stdout).toBe("");
  });
});

describe("usage errors", () => {
  const cases: [string, string[]][] = [
    ["an unknown export option", ["export", "--user", "u", "--bogus"]],
    ["export without a selection", ["export"]],
    ["export with a positional argument", ["export", "--user", "u", "extra"]],
    ["--session with --user", ["export", "--session", "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV", "--user", "u"]],
    ["a malformed session id", ["export", "--session", "nope"]],
    ["a malformed cursor", ["export", "--after", "not-a-cursor"]],
    ["--after with --from-beginning", ["export", "--after", "MTowOjA", "--from-beginning"]],
    ["an unknown tail option", ["tail", "--nope"]],
    ["tail --protocol http3", ["tail", "--protocol", "http3"]],
    ["tail with a malformed cursor", ["tail", "--after", "xyz"]],
    ["tail --user without a value", ["tail", "--user"]],
    ["an unknown command", ["frobnicate"]],
  ];

  it.each(cases)("exits 2 on %s", async (_name, args) => {
    const result = await runCli(args);

    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain("usage: session-manager");
    expect(result.stdout).toBe("");
  });

  it("prints help with exit 0", async () => {
    const result = await runCli(["export", "--help"]);

    expect(result.code).toBe(0);
    expect(result.stdout).toContain("--training-data-only");
  });
});
