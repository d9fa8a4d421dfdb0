/**
 * JSON nesting against standard protobuf decoders (recursion limit 100):
 * `payload` and `metadata` deeper than MAX_JSON_DEPTH are refused on every
 * protocol and nothing is stored; a value stored too deep (before the limit
 * existed) is withheld, so it never wedges a binary reader, a resumed
 * WatchSessionEvents stream, a grpc-js Watch or `tail --protocol grpc`.
 */
import { fileURLToPath } from "node:url";
import { Code, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import type { App } from "../../src/app.js";
import { chainHash } from "../../src/domain/chain.js";
import { jsonDepth, MAX_JSON_DEPTH, MAX_READABLE_JSON_DEPTH, type JsonObject, type JsonValue } from "../../src/domain/json.js";
import { runCli, startCli } from "../cli/cli-process.js";
import { openTestDatabase, startTestApp, uniqueId } from "../support/app.js";
import { expectError } from "../support/rpc.js";

type SessionClient = Client<typeof SessionManagerService>;

let app: App;
const sql = openTestDatabase(2);
const clients: Record<string, SessionClient> = {};

beforeAll(async () => {
  app = await startTestApp();
  const baseUrl = `http://127.0.0.1:${app.port}`;
  const transports: Record<string, Transport> = {
    grpc: createGrpcTransport({ baseUrl }),
    "connect binary": createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
    "connect json": createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  };
  for (const [name, transport] of Object.entries(transports)) clients[name] = createClient(SessionManagerService, transport);
});

afterAll(async () => {
  await app?.stop();
  await sql.end();
});

/** Returns `{ "a": [[...[1]...]] }`, nested `depth` levels in all (the object is one). */
function nested(depth: number): JsonObject {
  let value: JsonValue = 1;
  for (let level = 1; level < depth; level++) value = [value];
  return { a: value };
}

async function eventCount(userId: string): Promise<number> {
  const [row] = await sql<[{ n: number }]>`select count(*)::int as n from session_events where user_id = ${userId}`;
  return row.n;
}

/**
 * Appends an event whose payload nests `depth` levels straight into the
 * table, with a valid hash link, as a row written before the limit existed.
 */
async function storeDirectly(userId: string, sessionId: string, payload: JsonObject): Promise<void> {
  const [session] = await sql<[{ last_seq: string; last_hash: string }]>`
    select last_seq, last_hash
    from sessions
    where user_id = ${userId} and session_id = ${sessionId}
  `;
  const now = new Date(Math.floor(Date.now()));
  const event = {
    eventId: `evt_${uniqueId("deep")}`,
    userId,
    sessionId,
    seq: Number(session.last_seq) + 1,
    recordId: uniqueId("rec"),
    type: "care.legacy.deep",
    eventTime: now,
    receiveTime: now,
    source: "legacy-writer",
    performerId: "",
    payload,
  };
  const hash = chainHash(session.last_hash, event);
  await sql.begin(async (tx) => {
    await tx`
      insert into session_events
        (user_id, session_id, seq, event_id, record_id, request_hash, type, event_time, receive_time, source, performer_id, payload, hash)
      values
        (${userId}, ${sessionId}, ${event.seq}, ${event.eventId}, ${event.recordId}, 'legacy', ${event.type}, ${now}, ${now},
         ${event.source}, '', ${tx.json(payload)}, ${hash})
    `;
    await tx`
      update sessions
      set last_seq = ${event.seq}, last_hash = ${hash}, metadata = ${tx.json(nested(MAX_READABLE_JSON_DEPTH + 10))}
      where user_id = ${userId} and session_id = ${sessionId}
    `;
  });
}

describe("JSON nesting limit", () => {
  it("accepts payload and metadata nested exactly MAX_JSON_DEPTH levels and reads them back over gRPC", async () => {
    const userId = uniqueId("deep-ok");
    const grpcClient = clients.grpc!;
    const deepest = nested(MAX_JSON_DEPTH);
    expect(jsonDepth(deepest)).toBe(MAX_JSON_DEPTH);
    const { session } = await grpcClient.startSession({ recordId: uniqueId("rec"), userId, metadata: deepest });
    await grpcClient.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: session!.sessionId, type: "care.deep", source: "test", payload: deepest });
    await grpcClient.updateSession({ recordId: uniqueId("rec"), session: { sessionId: session!.sessionId, metadata: nested(3) }, updateMask: { paths: ["metadata"] } });
    const { events } = await grpcClient.listSessionEvents({ sessionId: session!.sessionId });
    // session.updated carries the old metadata two levels further down: still readable.
    expect(events.map((event) => event.type)).toEqual(["session.started", "care.deep", "session.updated"]);
    expect(events[1]!.payload).toEqual(deepest);
    expect(events.every((event) => !event.payloadWithheld)).toBe(true);
  });

  for (const protocol of ["grpc", "connect binary", "connect json"]) {
    it(`refuses deeper payload and metadata over ${protocol} with INVALID_REQUEST and stores nothing`, async () => {
      const client = clients[protocol]!;
      const userId = uniqueId("deep-no");
      const tooDeep = nested(MAX_JSON_DEPTH + 1);
      await expectError(client.startSession({ recordId: uniqueId("rec"), userId, metadata: tooDeep }), Code.InvalidArgument, "INVALID_REQUEST");
      expect(await eventCount(userId)).toBe(0);

      const { session } = await client.startSession({ recordId: uniqueId("rec"), userId });
      const sessionId = session!.sessionId;
      await expectError(
        client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.deep", source: "test", payload: tooDeep }),
        Code.InvalidArgument,
        "INVALID_REQUEST",
      );
      await expectError(
        client.updateSession({ recordId: uniqueId("rec"), session: { sessionId, metadata: tooDeep }, updateMask: { paths: ["metadata"] } }),
        Code.InvalidArgument,
        "INVALID_REQUEST",
      );
      expect(await eventCount(userId)).toBe(1);
      const { session: after } = await client.getSession({ sessionId });
      expect(after!.metadata).toEqual({});
    });
  }
});

describe("a stored value too deep for standard decoders", () => {
  const tooDeep = nested(MAX_READABLE_JSON_DEPTH + 30);
  let userId: string;
  let sessionId: string;

  beforeAll(async () => {
    userId = uniqueId("deep-legacy");
    const client = clients.grpc!;
    const { session } = await client.startSession({ recordId: uniqueId("rec"), userId });
    sessionId = session!.sessionId;
    await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.before", source: "test", payload: { n: 1 } });
    await storeDirectly(userId, sessionId, tooDeep);
    await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.after", source: "test", payload: { n: 2 } });
  });

  const expectTimeline = (events: SessionEvent[]) => {
    expect(events.map((event) => [Number(event.seq), event.type])).toEqual([
      [1, "session.started"],
      [2, "care.before"],
      [3, "care.legacy.deep"],
      [4, "care.after"],
    ]);
    expect(events[2]!.payloadWithheld).toBe(true);
    expect(events[2]!.payload).toEqual({});
    expect(events[3]!.payload).toEqual({ n: 2 });
  };

  for (const protocol of ["grpc", "connect binary", "connect json"]) {
    it(`is withheld, not sent, by ListSessionEvents, ListSessions and GetSession over ${protocol}`, async () => {
      const client = clients[protocol]!;
      expectTimeline((await client.listSessionEvents({ sessionId })).events);
      const { sessions } = await client.listSessions({ userId });
      expect(sessions.map((session) => [session.sessionId, session.metadataWithheld, session.metadata])).toEqual([[sessionId, true, {}]]);
      expect((await client.getSession({ sessionId })).session!.metadataWithheld).toBe(true);
    });
  }

  it("passes through a WatchSessionEvents stream over gRPC, also when resumed right before it", async () => {
    const client = clients.grpc!;
    const controller = new AbortController();
    const events: SessionEvent[] = [];
    for await (const frame of client.watchSessionEvents({ userId, fromBeginning: true }, { signal: controller.signal })) {
      if (frame.frame.case === "event") events.push(frame.frame.value);
      if (frame.frame.case === "caughtUp") break;
    }
    expectTimeline(events);

    const resumed: SessionEvent[] = [];
    for await (const frame of client.watchSessionEvents({ userId, afterCursor: events[1]!.cursor })) {
      if (frame.frame.case === "event") resumed.push(frame.frame.value);
      if (frame.frame.case === "caughtUp") break;
    }
    expect(resumed.map((event) => Number(event.seq))).toEqual([3, 4]);
  });

  it("passes through a grpc-js WatchSessionEvents stream", async () => {
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const definition = protoLoader.loadSync("sessionmanager/v1/session_manager_service.proto", {
      includeDirs: [`${root}proto`, `${root}proto-vendor`],
      keepCase: true,
      longs: String,
      oneofs: true,
      defaults: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as any;
    const grpcClient = new loaded.sessionmanager.v1.SessionManagerService(`127.0.0.1:${app.port}`, grpc.credentials.createInsecure());
    try {
      const seen = await new Promise<Array<[string, boolean]>>((resolve, reject) => {
        const call = grpcClient.WatchSessionEvents({ user_id: userId, from_beginning: true });
        const events: Array<[string, boolean]> = [];
        call.on("data", (frame: any) => {
          if (frame.event) events.push([frame.event.seq, frame.event.payload_withheld]);
          if (frame.caught_up) {
            call.cancel();
            resolve(events);
          }
        });
        call.on("error", (error: grpc.ServiceError) => (error.code === grpc.status.CANCELLED ? undefined : reject(error)));
      });
      expect(seen).toEqual([
        ["1", false],
        ["2", false],
        ["3", true],
        ["4", false],
      ]);
    } finally {
      grpcClient.close();
    }
  });

  it("passes through `tail --protocol grpc`, which keeps printing after it", async () => {
    const tail = startCli(["tail", "--url", `http://127.0.0.1:${app.port}`, "--protocol", "grpc", "--user", userId, "--from-beginning"]);
    try {
      await tail.waitFor((lines) => lines.length >= 4, 20_000);
      const printed = tail.lines.map((line) => JSON.parse(line) as { seq: string; payloadWithheld?: boolean });
      expect(printed.map((event) => [event.seq, event.payloadWithheld ?? false])).toEqual([
        ["1", false],
        ["2", false],
        ["3", true],
        ["4", false],
      ]);
    } finally {
      await tail.stop("SIGINT");
    }
  });

  it("is written whole by export, which has no decoder limit", async () => {
    const result = await runCli(["export", "--session", sessionId]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split("\n").map((line) => JSON.parse(line) as { seq: number | string; data: JsonObject });
    expect(lines[2]!.data).toEqual(tooDeep);
  });
});
