/**
 * Framework floor for bench/lifecycle.ts: serves SessionManagerService through
 * the SAME one-port server (src/transport/server.ts) and the same interceptors
 * as the service (access log with a silent logger, protovalidate), but its
 * handlers return fixed messages (bench/fixed-responses.ts) and never touch a
 * database. Whatever this serves per second is the most the service could
 * serve on this transport: "a no-op call through our server".
 *
 * gRPC over h2c goes through the grpc-js adapter (src/transport/grpc-js-adapter.ts),
 * as in the service; H2C_ADAPTER=connect serves it with connect-node instead.
 *
 *   PORT=0 node --import tsx bench/noop-server.ts   # prints "listening <port>"
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { createContractValidator } from "../src/transport/contract-validator.js";
import pino from "pino";
import { SessionManagerService } from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import { createGrpcJsServer } from "../src/transport/grpc-js-adapter.js";
import { createAccessInterceptor } from "../src/transport/interceptors.js";
import { createServer } from "../src/transport/server.js";
import { appendResponse, endResponse, getResponse, startResponse } from "./fixed-responses.js";

function routes(router: ConnectRouter): void {
  router.service(SessionManagerService, {
    async startSession() {
      return startResponse;
    },
    async getSession() {
      return getResponse;
    },
    async appendSessionEvent() {
      return appendResponse;
    },
    async endSession() {
      return endResponse;
    },
  });
}

const interceptors = [createAccessInterceptor(pino({ level: "silent" })), createValidateInterceptor({ validator: createContractValidator() })];
const server = createServer({
  routes,
  interceptors,
  grpcJs: process.env.H2C_ADAPTER === "connect" ? null : createGrpcJsServer({ routes, interceptors }),
});
const port = await server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? "127.0.0.1");
process.stdout.write(`listening ${port}\n`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void server.close(1000).then(() => process.exit(0));
  });
}
