/**
 * The Node entry point of the client (`session-manager/client`): transports
 * from connect-node. gRPC runs on HTTP/2 (h2c for http:// URLs, with a ping
 * every 10 s so a dead connection is noticed); Connect and gRPC-Web on
 * HTTP/1.1. Browsers get `browser.ts` (connect-web) through the package's
 * "browser" export condition.
 */
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { createClientWith, type SessionManagerClient, type SessionManagerClientOptions, type TransportFactory } from "./core.js";

export * from "./exports.js";

/** Builds connect-node transports. */
export const nodeTransports: TransportFactory = (kind, baseUrl, interceptors) => {
  switch (kind) {
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors, pingIntervalMs: 10_000 });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
  }
};

/**
 * Creates a client of the service at `options.baseUrl` over
 * `options.transport` ("connect" by default), sending `options.credential`.
 * See `SessionManagerClient` for what it does.
 */
export function createSessionManagerClient(options: SessionManagerClientOptions): SessionManagerClient {
  return createClientWith(nodeTransports, options);
}
