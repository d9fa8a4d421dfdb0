/**
 * Runs the service as real child processes (`node --import tsx
 * src/cli/index.ts serve`), each with its own port, on a shared database.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { freePort } from "../support/ports.js";
import { waitFor } from "../support/wait.js";
export { freePort };

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;
const UNKNOWN_SESSION_ID = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";

/** Names the generated client of SessionManagerService. */
export type SessionClient = Client<typeof SessionManagerService>;

/** Holds one running replica and clients for it. */
export interface Replica {
  name: string;
  port: number;
  child: ChildProcess;
  /** False once the process has exited. */
  alive: boolean;
  /** A gRPC client (HTTP/2, h2c). */
  grpc: SessionClient;
  /** A Connect JSON client (HTTP/1.1). */
  connect: SessionClient;
  /** The replica's stderr and stdout lines (warn and above). */
  logs: string[];
  /** Sends `signal` and waits for the process to exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a replica on `databaseUrl` and waits until it answers RPCs; `env`
 * adds or overrides environment variables (e.g. HEADERS_TIMEOUT_MS).
 */
export async function startReplica(name: string, databaseUrl: string, env: Record<string, string> = {}): Promise<Replica> {
  const port = await freePort();
  const child = spawn(NODE, ["--import", "tsx", "src/cli/index.ts", "serve"], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      AUTH: "off",
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      LOG_LEVEL: "warn",
      WATCH_POLL_MS: "20",
      WATCH_HEARTBEAT_MS: "300",
      SHUTDOWN_GRACE_MS: "500",
      // One process per replica: the test kills replicas by pid.
      WORKERS: "1",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const keep = (chunk: Buffer) => logs.push(...chunk.toString("utf8").split("\n").filter((line) => line !== ""));
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = once(child, "exit");
  const baseUrl = `http://127.0.0.1:${port}`;
  const replica: Replica = {
    name,
    port,
    child,
    alive: true,
    grpc: createClient(SessionManagerService, createGrpcTransport({ baseUrl })),
    connect: createClient(SessionManagerService, createConnectTransport({ baseUrl, httpVersion: "1.1" })),
    logs,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
  void exited.then(() => (replica.alive = false));
  try {
    await waitUntilServing(replica);
  } catch (error) {
    await replica.kill("SIGKILL");
    throw error;
  }
  return replica;
}

async function waitUntilServing(replica: Replica): Promise<void> {
  await waitFor(
    async () => {
      if (!replica.alive) throw new Error(`replica ${replica.name} exited:\n${replica.logs.join("\n")}`);
      try {
        await replica.connect.getSession({ sessionId: UNKNOWN_SESSION_ID }, { timeoutMs: 2_000 });
        return true;
      } catch (error) {
        return ConnectError.from(error).code === Code.NotFound;
      }
    },
    { timeoutMs: 30_000, intervalMs: 100, message: () => `replica ${replica.name} to answer RPCs:\n${replica.logs.join("\n")}` },
  );
}
