/**
 * OpenTelemetry traces. The code uses `@opentelemetry/api` only: one server
 * span per RPC (the access interceptor, so both adapters), continuing an
 * incoming W3C `traceparent`, and a child span per database transaction
 * (src/service/transaction.ts). Without an SDK every call is a no-op.
 *
 * The SDK (`@opentelemetry/sdk-node`) is loaded only when the standard
 * environment asks for traces: OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER set, and
 * OTEL_SDK_DISABLED not "true". It then reads the rest itself
 * (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_PROTOCOL, ...).
 * Metrics and logs stay on Prometheus and pino: OTEL_METRICS_EXPORTER and
 * OTEL_LOGS_EXPORTER default to "none" here.
 *
 * Attributes follow the OpenTelemetry semantic conventions for RPC
 * (rpc.system, rpc.service, rpc.method, rpc.grpc.status_code) and database
 * client spans (db.system.name). HTTP/2 servers are invisible to
 * OpenTelemetry's automatic HTTP instrumentation (opentelemetry-js #2667),
 * which is why the spans are made here.
 */
import { SpanKind, SpanStatusCode, context, propagation, trace, type Context, type Span, type TextMapGetter } from "@opentelemetry/api";
import type { Logger } from "pino";

const tracer = trace.getTracer("session-manager");

/** Starts the OpenTelemetry SDK if the environment asks for traces; returns how to flush and stop it. */
export async function startTracing(env: NodeJS.ProcessEnv, log: Logger): Promise<() => Promise<void>> {
  const wanted =
    env.OTEL_SDK_DISABLED !== "true" &&
    Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_TRACES_EXPORTER);
  if (!wanted) return async () => {};
  env.OTEL_METRICS_EXPORTER ??= "none";
  env.OTEL_LOGS_EXPORTER ??= "none";
  env.OTEL_SERVICE_NAME ??= "session-manager";
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  const sdk = new NodeSDK();
  sdk.start();
  log.info({ endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? null }, "OpenTelemetry tracing started");
  return () => sdk.shutdown();
}

const headerGetter: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

/** Codes that make a server span an error (OpenTelemetry semantic conventions for gRPC servers). */
const SERVER_ERRORS = new Set(["Unknown", "DeadlineExceeded", "Unimplemented", "Internal", "Unavailable", "DataLoss"]);

/** One RPC's server span and the context its handler runs in. */
export interface RpcSpan {
  context: Context;
  /** `trace_id` and `span_id` for the log line, when the span is sampled. */
  logFields(): Record<string, string>;
  /** Ends the span with the call's code name ("OK", "NotFound", ...) and numeric code (0 for OK). */
  end(code: string, numericCode: number): void;
}

/** Starts the server span of an RPC, as a child of the caller's `traceparent` when it sent one. */
export function startRpcSpan(service: string, method: string, protocol: "grpc" | "grpc_web" | "connect", header: Headers): RpcSpan {
  const parent = propagation.extract(context.active(), header, headerGetter);
  const span: Span = tracer.startSpan(
    `${service}/${method}`,
    {
      kind: SpanKind.SERVER,
      attributes: { "rpc.system": protocol === "connect" ? "connect_rpc" : "grpc", "rpc.service": service, "rpc.method": method },
    },
    parent,
  );
  return new ServerSpan(trace.setSpan(parent, span), span, protocol);
}

/** `RpcSpan` as a class: every open stream holds one. */
class ServerSpan implements RpcSpan {
  constructor(
    readonly context: Context,
    private readonly span: Span,
    private readonly protocol: "grpc" | "grpc_web" | "connect",
  ) {}

  logFields(): Record<string, string> {
    if (!this.span.isRecording()) return {};
    const { traceId, spanId } = this.span.spanContext();
    return { trace_id: traceId, span_id: spanId };
  }

  end(code: string, numericCode: number): void {
    const { span } = this;
    if (this.protocol !== "connect") span.setAttribute("rpc.grpc.status_code", numericCode);
    else if (code !== "OK") span.setAttribute("rpc.connect_rpc.error_code", code.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase());
    if (SERVER_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: code });
    span.end();
  }
}

/** Runs `work` (one database transaction) in a client span, a child of the active RPC span. */
export function inDatabaseSpan<T>(name: string, work: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes: { "db.system.name": "postgresql" } }, async (span) => {
    try {
      return await work();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : "error" });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The log fields of the active span (pino's mixin): `trace_id` and `span_id` while a sampled span is active. */
export function activeSpanLogFields(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (span === undefined || !span.isRecording()) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
