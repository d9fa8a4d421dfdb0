/**
 * The feed's fast path over the grpc-js adapter (src/feed/push.ts): streams
 * waiting at the tail get their frames written by the fan-out directly. Each
 * stream must still receive exactly the table's order for its filter, also
 * a stream whose client stops reading (its HTTP/2 buffer fills, the sink
 * refuses, frames queue and the stream's own loop sends them after the
 * drain), and the fast path must actually be taken.
 */
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SessionManagerService,
  WatchSessionEventsRequestSchema,
  WatchSessionEventsResponseSchema,
  type WatchSessionEventsRequest,
  type WatchSessionEventsResponse,
} from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { decodeCursor } from "../../src/domain/cursor.js";
import { headCursor, tableOrder } from "../feed/feed-helpers.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { waitFor } from "../support/wait.js";

const WATCH_PATH = `/${SessionManagerService.typeName}/WatchSessionEvents`;

let app: App;
let channel: grpc.Client;
let client: Client<typeof SessionManagerService>;

beforeAll(async () => {
  app = await startTestApp();
  channel = new grpc.Client(`127.0.0.1:${app.port}`, grpc.credentials.createInsecure());
  client = createClient(SessionManagerService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}` }));
});

afterAll(async () => {
  channel?.close();
  await app?.stop();
});

/** One grpc-js stream and the event ids it received, in order. */
interface Watch {
  call: grpc.ClientReadableStream<WatchSessionEventsResponse>;
  events: string[];
  caughtUp: boolean;
}

function watch(request: MessageInitShape<typeof WatchSessionEventsRequestSchema>): Watch {
  const call = channel.makeServerStreamRequest(
    WATCH_PATH,
    (message: WatchSessionEventsRequest) => Buffer.from(toBinary(WatchSessionEventsRequestSchema, message)),
    (bytes: Buffer) => fromBinary(WatchSessionEventsResponseSchema, bytes),
    create(WatchSessionEventsRequestSchema, request),
    new grpc.Metadata(),
    {},
  );
  const watch: Watch = { call, events: [], caughtUp: false };
  call.on("data", (response: WatchSessionEventsResponse) => {
    if (response.frame.case === "event") watch.events.push(response.frame.value.eventId);
    if (response.frame.case === "caughtUp") watch.caughtUp = true;
  });
  call.on("error", () => {});
  return watch;
}

describe("feed fast path over grpc-js", () => {
  it("writes frames straight to waiting streams, in the table's order for each filter, also to a stream that stops reading", async () => {
    const users = [uniqueId("push-a"), uniqueId("push-b")];
    const tag = uniqueId("push").replace(/-/g, "");
    const head = await headCursor(app.sql);
    const sessions: string[] = [];
    for (const userId of users) sessions.push((await client.startSession({ recordId: uniqueId("rec"), userId })).session!.sessionId);

    const queries = [
      { userId: users[0]!, afterCursor: head },
      { userId: users[0]!, afterCursor: head },
      { userId: users[1]!, afterCursor: head },
      { types: [`${tag}.x.*`], afterCursor: head },
      { afterCursor: head },
    ];
    const watches = queries.map((q) => watch(q));
    // This one stops reading: 64 KiB payloads fill its HTTP/2 window and grpc-js's buffer.
    const stalled = watch({ userId: users[1]!, afterCursor: head });
    stalled.call.pause();
    await waitFor(() => watches.every((w) => w.caughtUp), { message: "every stream caught up" });
    const { pushedFrames: pushedBefore, queuedTotal: queuedBefore } = app.feed.stats();

    const big = "x".repeat(60_000);
    let last = "";
    await Promise.all(
      users.map(async (_, u) => {
        for (let i = 0; i < 60; i++) {
          const appended = await client.appendSessionEvent({
            recordId: uniqueId("rec"),
            sessionId: sessions[u]!,
            type: `${tag}.${i % 2 === 0 ? "x" : "y"}.${i}`,
            source: "push-test",
            payload: u === 1 ? { big } : { i },
          });
          last = appended.event!.eventId;
        }
      }),
    );
    expect(last).not.toBe("");
    const until = await waitFor(async () => {
      const bounds = decodeCursor(await headCursor(app.sql));
      const expected = await tableOrder(app.sql, { userId: users[1]! }, decodeCursor(head), bounds);
      return expected.length >= 61 ? bounds : null;
    }, { message: "all appends below the horizon" });

    // The stalled stream's server side could not take everything: frames waited for the drain.
    stalled.call.resume();
    const all = [...watches, stalled];
    const qs = [...queries, { userId: users[1]!, afterCursor: head }];
    for (const [i, w] of all.entries()) {
      const expected = (await tableOrder(app.sql, qs[i]!, decodeCursor(head), until)).map((row) => row.eventId);
      expect(expected.length, `query ${i}`).toBeGreaterThan(0);
      await waitFor(() => w.events.length >= expected.length, { message: `stream ${i} received ${expected.length} events` });
      // Exactly the table's order for its filter: nothing missing, repeated or reordered.
      expect(w.events.slice(0, expected.length), `stream ${i}`).toEqual(expected);
    }
    // Both paths were taken: frames written by the fan-out, and frames queued for the streams' loops.
    expect(app.feed.stats().pushedFrames).toBeGreaterThan(pushedBefore);
    expect(app.feed.stats().queuedTotal).toBeGreaterThan(queuedBefore);
    for (const w of all) w.call.cancel();
  });
});
