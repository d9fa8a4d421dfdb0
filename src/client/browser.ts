/**
 * The browser entry point of the client (`session-manager/client` under the
 * "browser" export condition): transports from connect-web over `fetch`.
 * Browsers cannot speak gRPC (HTTP/2 trailers): use "connect" (default) or
 * "grpc-web".
 */
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { createClientWith, type SessionManagerClient, type SessionManagerClientOptions, type TransportFactory } from "./core.js";

export * from "./exports.js";

/** Builds connect-web transports; "grpc" is refused. */
export const browserTransports: TransportFactory = (kind, baseUrl, interceptors) => {
  switch (kind) {
    case "grpc":
      throw new TypeError('transport "grpc" needs HTTP/2 trailers, which browsers do not expose: use "connect" or "grpc-web"');
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, interceptors });
    case "connect":
      return createConnectTransport({ baseUrl, interceptors });
  }
};

/** Creates a client over connect-web; see the Node entry point (`index.ts`). */
export function createSessionManagerClient(options: SessionManagerClientOptions): SessionManagerClient {
  return createClientWith(browserTransports, options);
}
