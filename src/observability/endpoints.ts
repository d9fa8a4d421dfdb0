/**
 * The operator's plain HTTP endpoints, served on the service port (HTTP/1.1,
 * and h2 over TLS) and, when METRICS_PORT is set, on that port instead of
 * the service port for /metrics:
 *
 *   GET /metrics  Prometheus text format (src/observability/metrics.ts)
 *   GET /healthz  200 while the process runs (liveness)
 *   GET /readyz   200 when the database answers, every migration is applied
 *                 and the replica is not shutting down; 503 with the reason
 *                 otherwise (readiness: take it out of the load balancer)
 */
import http from "node:http";
import type http2 from "node:http2";
import type { Registry } from "prom-client";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/** Answers a request if it is one of the endpoints; returns false to let the RPC server have it. */
export type PlainHandler = (req: Request, res: Response) => boolean;

/** Configures `createEndpoints`. */
export interface EndpointOptions {
  /** Null: /metrics is not served here (it is on METRICS_PORT). */
  metrics: { contentType: string; text(): Promise<string> } | null;
  /** Resolves null when ready, or why not. */
  notReadyBecause(): Promise<string | null>;
}

/** Creates the handler of /metrics, /healthz and /readyz. */
export function createEndpoints(options: EndpointOptions): PlainHandler {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "").split("?")[0];
    if (path === "/healthz") {
      send(res, 200, "text/plain; charset=utf-8", "ok\n");
    } else if (path === "/readyz") {
      void options.notReadyBecause().then(
        (reason) => send(res, reason === null ? 200 : 503, "text/plain; charset=utf-8", `${reason ?? "ready"}\n`),
        () => send(res, 503, "text/plain; charset=utf-8", "readiness check failed\n"),
      );
    } else if (path === "/metrics" && options.metrics !== null) {
      const metrics = options.metrics;
      void metrics.text().then(
        (text) => send(res, 200, metrics.contentType, text),
        (error: unknown) => send(res, 500, "text/plain; charset=utf-8", `metrics unavailable: ${String(error)}\n`),
      );
    } else {
      return false;
    }
    return true;
  };
}

/** Exposes a registry for `createEndpoints`. */
export function registryMetrics(registry: Registry): { contentType: string; text(): Promise<string> } {
  return { contentType: registry.contentType, text: () => registry.metrics() };
}

function send(res: Response, status: number, contentType: string, body: string): void {
  (res as http.ServerResponse).writeHead(status, { "content-type": contentType, "cache-control": "no-store" }).end(body);
}

/** Creates the METRICS_PORT server: the endpoints, 404 for anything else. */
export function createMetricsServer(handler: PlainHandler): http.Server {
  return http.createServer((req, res) => {
    if (!handler(req, res)) res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
  });
}
