/**
 * Fan-out floor for bench/watch.ts: a bare @grpc/grpc-js server that serves
 * WatchSessionEvents with no database, no interceptors and no feed. Each
 * stream is registered under its request's user_id and gets a caught_up
 * frame at once; then, on the parent's "run" message (IPC), the server emits
 * `rate` events per second for `durationMs`, round-robin over users
 * "u0".."u{users-1}": each event is encoded ONCE (event_id = the send time,
 * ms since the epoch as `performance.timeOrigin + performance.now()`, so the
 * subscriber measures send-to-delivery itself) and the same bytes are
 * written to every stream of its user. What is left is grpc-js and Node's
 * HTTP/2 layer writing frames: the least a replica can spend per delivery.
 *
 * Protocol (IPC): sends `{ type: "listening", port }`; takes `{ type: "run",
 * rate, durationMs, users }` and answers `{ type: "done", sent }`.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { setTimeout as sleep } from "node:timers/promises";
import { SessionManagerService, WatchSessionEventsRequestSchema, WatchSessionEventsResponseSchema } from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import { nowMs } from "./proc-stats.js";

type Stream = grpc.ServerWritableStream<Buffer, Buffer>;

const byUser = new Map<string, Set<Stream>>();
const identity = (bytes: Buffer) => bytes;
const caughtUp = Buffer.from(toBinary(WatchSessionEventsResponseSchema, create(WatchSessionEventsResponseSchema, { frame: { case: "caughtUp", value: { cursor: "floor" } } })));

function watch(call: Stream): void {
  const { userId } = fromBinary(WatchSessionEventsRequestSchema, call.request);
  let streams = byUser.get(userId);
  if (streams === undefined) byUser.set(userId, (streams = new Set()));
  streams.add(call);
  call.on("cancelled", () => streams.delete(call));
  call.write(caughtUp);
}

async function run(rate: number, durationMs: number, users: number): Promise<number> {
  const total = Math.floor((durationMs / 1000) * rate);
  const start = nowMs();
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / rate - nowMs();
    if (wait > 1) await sleep(wait);
    const userId = `u${i % users}`;
    // The fields and sizes of a real event frame (ids, cursor, times, hash), the send time as its id.
    const now = timestampNow();
    const event = {
      eventId: nowMs().toFixed(3),
      cursor: Buffer.from(`1:${1000 + i}:${i}`).toString("base64url"),
      sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV",
      seq: BigInt(i),
      userId,
      recordId: `floor-${i}`,
      type: "bench.tick",
      eventTime: now,
      receiveTime: now,
      source: "bench-writer",
      payload: { i },
      hash: "0".repeat(64),
    };
    const bytes = Buffer.from(toBinary(WatchSessionEventsResponseSchema, create(WatchSessionEventsResponseSchema, { frame: { case: "event", value: event } })));
    for (const call of byUser.get(userId) ?? []) call.write(bytes);
  }
  return total;
}

const server = new grpc.Server({ "grpc.max_concurrent_streams": 1000 });
server.addService(
  {
    WatchSessionEvents: {
      path: `/${SessionManagerService.typeName}/${SessionManagerService.method.watchSessionEvents.name}`,
      requestStream: false,
      responseStream: true,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  } as grpc.ServiceDefinition,
  { WatchSessionEvents: watch as grpc.UntypedHandleCall },
);
const port = await new Promise<number>((resolve, reject) => {
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
});
process.on("message", (message: { type: string; rate: number; durationMs: number; users: number }) => {
  if (message.type !== "run") return;
  void run(message.rate, message.durationMs, message.users).then((sent) => process.send!({ type: "done", sent }));
});
process.send!({ type: "listening", port });
