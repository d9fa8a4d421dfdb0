/**
 * Framework floor of plain @grpc/grpc-js for bench/lifecycle.ts: a bare
 * grpc-js server (insecure, bound with bindAsync) that serves
 * SessionManagerService's GetSession, StartSession, AppendSessionEvent and
 * EndSession with FIXED answers, the same messages as bench/noop-server.ts
 * (bench/fixed-responses.ts), encoded once into Buffers at start. Requests are
 * not decoded (identity deserializer), nothing is validated or logged, no
 * interceptors: what is left is grpc-js and Node's HTTP/2 layer. Compare the
 * no-op server's CPU per call with this one's to see what our adapter and
 * interceptors add.
 *
 *   PORT=0 node --import tsx bench/plain-grpc-server.ts   # prints "listening <port>"
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  AppendSessionEventResponseSchema,
  EndSessionResponseSchema,
  GetSessionResponseSchema,
  SessionManagerService,
  StartSessionResponseSchema,
} from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import { appendResponse, endResponse, getResponse, startResponse } from "./fixed-responses.js";

/** Encodes a fixed answer once. */
function encoded<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Buffer {
  return Buffer.from(toBinary(schema, message));
}

/** The fixed answer of each served method, by method name. */
const answers: Record<string, Buffer> = {
  StartSession: encoded(StartSessionResponseSchema, startResponse),
  GetSession: encoded(GetSessionResponseSchema, getResponse),
  AppendSessionEvent: encoded(AppendSessionEventResponseSchema, appendResponse),
  EndSession: encoded(EndSessionResponseSchema, endResponse),
};

const identity = (bytes: Buffer) => bytes;

/** A unary method that passes bytes through both ways (requests undecoded, answers pre-encoded). */
function method(name: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: `/${SessionManagerService.typeName}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

/** A handler that answers every call with the same bytes. */
function fixed(answer: Buffer): grpc.handleUnaryCall<Buffer, Buffer> {
  return (_call, callback) => callback(null, answer);
}

const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
const implementation: grpc.UntypedServiceImplementation = {};
for (const [name, answer] of Object.entries(answers)) {
  definition[name] = method(name);
  implementation[name] = fixed(answer) as grpc.UntypedHandleCall;
}

// Same stream limit as the service's grpc-js adapter.
const server = new grpc.Server({ "grpc.max_concurrent_streams": 1000 });
server.addService(definition as grpc.ServiceDefinition, implementation);
const host = process.env.HOST ?? "127.0.0.1";
const port = await new Promise<number>((resolve, reject) => {
  server.bindAsync(`${host}:${process.env.PORT ?? 0}`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
});
process.stdout.write(`listening ${port}\n`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    server.tryShutdown(() => process.exit(0));
    setTimeout(() => {
      server.forceShutdown();
      process.exit(0);
    }, 1000).unref();
  });
}
