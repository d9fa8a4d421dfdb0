/**
 * OpenTelemetry: `session-manager serve` started with the standard OTEL_*
 * variables exports, to a local OTLP/HTTP (JSON) receiver, a server span per
 * RPC that continues the caller's W3C traceparent, with a child span for the
 * database transaction; the RPC's log line carries the trace and span ids.
 * Over gRPC (grpc-js adapter) and Connect (connect-node), so both adapters.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { databaseUrl, uniqueId } from "../support/app.js";
import { waitFor } from "../support/wait.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

const spans: ExportedSpan[] = [];
const logLines: Record<string, unknown>[] = [];
let receiver: http.Server;
let server: ChildProcess;
let port: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(free));
    });
  });
}

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const exported = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: ExportedSpan[] }[] }[] };
        for (const resource of exported.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  receiver.listen(0, "127.0.0.1");
  await once(receiver, "listening");
  port = await freePort();
  server = spawn(`${ROOT}node_modules/.bin/node`, ["--import", "tsx", "src/cli/index.ts", "serve"], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      AUTH: "off",
      WORKERS: "1",
      DATABASE_URL: databaseUrl(),
      LOG_LEVEL: "info",
      SWEEP_INTERVAL_MS: "0",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as net.AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_TRACES_SAMPLER: "parentbased_always_on",
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_SERVICE_NAME: "session-manager-test",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let partial = "";
  server.stdout!.on("data", (chunk: Buffer) => {
    const parts = (partial + chunk.toString("utf8")).split("\n");
    partial = parts.pop()!;
    for (const line of parts) if (line.startsWith("{")) logLines.push(JSON.parse(line) as Record<string, unknown>);
  });
  await waitFor(() => logLines.some((line) => line.msg === "listening"), { timeoutMs: 30_000, message: "the server listening" });
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = once(server, "exit");
    server.kill("SIGTERM");
    await exited;
  }
  receiver?.close();
});

function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
}

describe.each([
  ["gRPC (grpc-js)", "grpc"],
  ["Connect (connect-node)", "connect"],
] as const)("traces over %s", (_name, protocol) => {
  it("exports the RPC's server span under the caller's trace, with a child database span, and logs its ids", async () => {
    const baseUrl = `http://127.0.0.1:${port}`;
    const transport = protocol === "grpc" ? createGrpcTransport({ baseUrl }) : createConnectTransport({ baseUrl, httpVersion: "1.1" });
    const client = createClient(SessionManagerService, transport);
    // StartSession goes through group commit: its batch's transaction is a child of the call that opened it.
    const startTrace = randomHex(16);
    const { session } = await client.startSession(
      { recordId: uniqueId("rec"), userId: uniqueId("traced") },
      { headers: { traceparent: `00-${startTrace}-${randomHex(8)}-01` } },
    );
    const startSpan = await waitFor(() => spans.find((span) => span.traceId === startTrace && span.name.endsWith("/StartSession")), { message: "the StartSession span" });
    await waitFor(() => spans.find((span) => span.traceId === startTrace && span.parentSpanId === startSpan.spanId && span.name === "db.transaction"), {
      message: "StartSession's database span",
    });

    const traceId = randomHex(16);
    const parentId = randomHex(8);
    await client.pauseSession({ recordId: uniqueId("rec"), sessionId: session!.sessionId }, { headers: { traceparent: `00-${traceId}-${parentId}-01` } });

    const method = "sessionmanager.v1.SessionManagerService/PauseSession";
    const serverSpan = await waitFor(() => spans.find((span) => span.traceId === traceId && span.name === method), { message: "the server span" });
    expect(serverSpan.parentSpanId).toBe(parentId);
    expect(serverSpan.kind).toBe(2); // SPAN_KIND_SERVER
    const attributes = Object.fromEntries(serverSpan.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
    expect(attributes).toMatchObject({
      "rpc.system": protocol === "grpc" ? "grpc" : "connect_rpc",
      "rpc.service": "sessionmanager.v1.SessionManagerService",
      "rpc.method": "PauseSession",
    });
    const child = await waitFor(() => spans.find((span) => span.traceId === traceId && span.parentSpanId === serverSpan.spanId), {
      message: "a child span of the server span",
    });
    expect(child.name).toBe("db.transaction");
    expect(child.kind).toBe(3); // SPAN_KIND_CLIENT

    const line = await waitFor(() => logLines.find((l) => l.rpc === "PauseSession" && l.trace_id === traceId), { message: "the log line with trace_id" });
    expect(line.span_id).toBe(serverSpan.spanId);
  });
});
