/**
 * Client process of bench/stream-memory.ts: opens STREAMS WatchSessionEvents
 * streams on BASE (host:port) over @grpc/grpc-js clients of 500 streams each
 * (one HTTP/2 connection per client), stream i filtering user
 * `${PREFIX}${i % 100}`, and sends "ready" (IPC) once every stream has sent
 * caught_up; then holds them open until killed. An open refused with
 * RESOURCE_EXHAUSTED is retried after 1 s; any other stream error ends it
 * with exit code 1.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { WatchSessionEventsRequestSchema, WatchSessionEventsResponseSchema } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";

const STREAMS = Number(process.env.STREAMS);
const BASE = process.env.BASE!;
const PREFIX = process.env.PREFIX ?? "u";
const PATH = "/sessionmanager.v1.SessionManagerService/WatchSessionEvents";
const serialize = (message: unknown) => Buffer.from(toBinary(WatchSessionEventsRequestSchema, message as never));
const deserialize = (bytes: Buffer) => fromBinary(WatchSessionEventsResponseSchema, bytes);
// A distinct option per client keeps grpc-js from sharing one connection between them.
const clients = Array.from({ length: Math.ceil(STREAMS / 500) }, (_, c) => new grpc.Client(BASE, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "bench.connection": c }));
let caughtUp = 0;

/** Opens stream i; a refusal (RESOURCE_EXHAUSTED: the replica's load admission while thousands open at once) is retried after 1 s, as clients do. */
function open(i: number): void {
  const call = clients[Math.floor(i / 500)]!.makeServerStreamRequest(PATH, serialize, deserialize, create(WatchSessionEventsRequestSchema, { userId: `${PREFIX}${i % 100}` }));
  let seen = false;
  call.on("data", (response: ReturnType<typeof deserialize>) => {
    if (response.frame.case === "caughtUp" && !seen) {
      seen = true;
      if (++caughtUp === STREAMS) process.send!("ready");
    }
  });
  call.on("error", (error: grpc.ServiceError) => {
    if (error.code === grpc.status.RESOURCE_EXHAUSTED && !seen) {
      setTimeout(() => open(i), 1000);
      return;
    }
    process.stderr.write(`stream ${i}: ${String(error)}\n`);
    process.exit(1);
  });
}

for (let i = 0; i < STREAMS; i++) {
  open(i);
  if (i % 500 === 499) await new Promise((resolve) => setTimeout(resolve, 50));
}
