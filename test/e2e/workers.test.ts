/**
 * `serve` with WORKERS=2 as an operator runs it: two worker processes share
 * the port and both answer calls (gRPC and Connect), a worker that dies is
 * replaced, and SIGTERM to the primary stops every process gracefully.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { databaseUrl } from "../support/app.js";
import { freePort } from "../support/ports.js";
import { waitFor } from "../support/wait.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const UNKNOWN_SESSION_ID = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";

interface LogLine {
  msg: string;
  pid?: number;
  rpc?: string;
  code?: string;
}

const children: Array<ReturnType<typeof spawn>> = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
});

/** Calls GetSession over a fresh HTTP/1.1 connection (no keep-alive), so the cluster picks a worker each time. */
function getOnNewConnection(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: "127.0.0.1", port, method: "POST", path: "/sessionmanager.v1.SessionManagerService/GetSession", agent: false, headers: { "content-type": "application/json", connection: "close" } },
      (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode ?? 0));
      },
    );
    request.on("error", reject);
    request.end(JSON.stringify({ sessionId: UNKNOWN_SESSION_ID }));
  });
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("WORKERS=2", () => {
  it("serves from both workers on one port, replaces a dead worker, and stops them all on SIGTERM", async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    const child = spawn(`${ROOT}node_modules/.bin/node`, ["--import", "tsx", "src/cli/index.ts", "serve"], {
      cwd: ROOT,
      env: { ...process.env, HOST: "127.0.0.1", AUTH: "off", PORT: String(port), DATABASE_URL: databaseUrl(), WORKERS: "2", METRICS_PORT: String(metricsPort), LOG_LEVEL: "info", SWEEP_INTERVAL_MS: "0", SHUTDOWN_GRACE_MS: "500" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    const lines: LogLine[] = [];
    let stderr = "";
    let partial = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      const text = partial + chunk.toString("utf8");
      const complete = text.split("\n");
      partial = complete.pop()!;
      for (const line of complete) if (line.startsWith("{")) lines.push(JSON.parse(line) as LogLine);
    });
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const listening = () => new Set(lines.filter((line) => line.msg === "listening").map((line) => line.pid!));
    await waitFor(() => listening().size === 2, { timeoutMs: 30_000, message: () => `two workers listening; stderr: ${stderr}` });
    const [first, second] = [...listening()];
    expect(first).not.toBe(child.pid);

    // Fresh connections are spread over the workers; each answers.
    for (let i = 0; i < 20; i++) expect(await getOnNewConnection(port)).toBe(404);
    const served = () => new Set(lines.filter((line) => line.rpc === "GetSession").map((line) => line.pid));
    await waitFor(() => served().size === 2, { message: "calls served by both workers" });

    const grpcClient = createClient(SessionManagerService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const error = await grpcClient.getSession({ sessionId: UNKNOWN_SESSION_ID }).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.NotFound);

    // METRICS_PORT: the primary sums every worker's counters (20 Connect calls spread over both, one gRPC call).
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const handled = (protocol: string) =>
      metrics
        .split("\n")
        .filter((line) => line.startsWith("grpc_server_handled_total{"))
        .filter((line) => ['grpc_method="GetSession"', `protocol="${protocol}"`, 'grpc_code="NotFound"'].every((label) => line.includes(label)))
        .map((line) => Number(line.split(" ").pop()));
    expect(handled("connect")).toEqual([20]);
    expect(handled("grpc")).toEqual([1]);

    process.kill(first!, "SIGKILL");
    await waitFor(() => listening().size === 3, { timeoutMs: 30_000, message: "a replacement worker listening" });
    const replacement = [...listening()].find((pid) => pid !== first && pid !== second)!;
    expect(await getOnNewConnection(port)).toBe(404);

    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect([second, replacement].filter((pid) => isRunning(pid!))).toEqual([]);
  });
});
