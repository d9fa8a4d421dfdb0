/**
 * The service's replicas as real processes (`node --import tsx
 * src/cli/index.ts serve`), each in its own network namespace
 * (network.ts), all on the one chaos PostgreSQL through their own latency
 * proxy route. They run with AUTH required (HOST is not loopback) and the
 * harness calls them with an API key made by `session-manager keys create`.
 *
 * A supervisor restarts a replica that exits by itself (and records it: a
 * replica must ride out every fault), as an orchestrator would; the nemesis
 * kills and restarts replicas through `kill` and `restart`.
 */
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { createSessionManagerClient } from "../src/client/index.js";
import { SessionManagerError } from "../src/client/errors.js";
import type { Replica, SessionClient } from "../test/replicas/replica-process.js";
import { waitFor } from "../test/support/wait.js";
import type { ReplicaNet } from "./network.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NODE = process.execPath;
/** The port every replica listens on inside its own namespace. */
export const REPLICA_PORT = 8080;
const UNKNOWN_SESSION_ID = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const LOG_LINES_KEPT = 40;

/** A running replica process; `Replica` so test/replicas' subscribers can use it. */
export interface ChaosReplica extends Replica {
  net: ReplicaNet;
  /** True while the nemesis holds it SIGSTOPped. */
  frozen: boolean;
}

/** Configures `createReplicaSet`. */
export interface ReplicaSetOptions {
  nets: ReplicaNet[];
  /** DATABASE_URL of replica i (its latency proxy route). */
  databaseUrls: string[];
  apiKey: string;
  /** Extra environment for every replica (e.g. shorter sweeps). */
  env: Record<string, string>;
  /** Every replica's output (warn and above) is appended to `<logDir>/r<N>.log`. */
  logDir: string;
  /** Called with each replica process's pid when it starts (so a later run can kill what a crashed one left). */
  onSpawn(pid: number): void;
}

/** The replicas, by slot (one slot per namespace). */
export interface ReplicaSet {
  /** The current process of each slot. */
  readonly slots: ChaosReplica[];
  /** Replicas whose process runs (frozen ones included: clients cannot know). */
  alive(): Replica[];
  /** Clients of slot i (the same objects across restarts): gRPC over h2c and Connect over HTTP/1.1, with the API key. */
  clients(i: number): { grpc: SessionClient; connect: SessionClient };
  /** SIGKILLs slot i and waits for the exit; the supervisor leaves it down until `restart`. */
  kill(i: number): Promise<void>;
  /** Starts slot i again and waits until it serves (retrying while the database is away, up to 90 s). */
  restart(i: number): Promise<void>;
  freeze(i: number): void;
  thaw(i: number): void;
  /** Resolves when slot i answers GetSession (NOT_FOUND for an unknown id: it reached the database) within `timeoutMs`. */
  serves(i: number, timeoutMs: number): Promise<boolean>;
  /** Exits that the nemesis did not cause, with the last log lines. */
  readonly crashes: string[];
  stopAll(): Promise<void>;
}

/** Creates an API key with the CLI (`keys create`, which also applies the migrations) and returns its secret. */
export async function createApiKey(databaseUrl: string): Promise<string> {
  const { stdout } = await promisify(execFile)(NODE, ["--import", "tsx", "src/cli/index.ts", "keys", "create", "--name", "chaos", "--role", "writer"], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" },
  });
  const secret = /^secret: (\S+)$/m.exec(stdout)?.[1];
  if (secret === undefined) throw new Error(`keys create printed no secret:\n${stdout}`);
  return secret;
}

/** Starts one replica per net and waits until each serves. */
export async function createReplicaSet(options: ReplicaSetOptions): Promise<ReplicaSet> {
  const clientsBySlot = options.nets.map((net) => {
    const baseUrl = `http://${net.replicaAddress}:${REPLICA_PORT}`;
    const make = (transport: "grpc" | "connect") =>
      createSessionManagerClient({ baseUrl, transport, credential: options.apiKey, retry: { maxAttempts: 1, attemptTimeoutMs: 0 } }).rpc;
    return { grpc: make("grpc"), connect: make("connect") };
  });
  const slots: ChaosReplica[] = [];
  const crashes: string[] = [];
  /** Slots the nemesis killed on purpose (their exit is not a crash). */
  const expectedExit = new Set<ChaosReplica>();
  let stopping = false;

  const spawnReplica = (i: number): ChaosReplica => {
    const net = options.nets[i]!;
    // `ip netns exec` execs the command, so the child's pid is the replica's own.
    const child = spawn("ip", ["netns", "exec", net.namespace, NODE, "--import", "tsx", "src/cli/index.ts", "serve"], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...options.env,
        HOST: net.replicaAddress,
        PORT: String(REPLICA_PORT),
        DATABASE_URL: options.databaseUrls[i]!,
        WORKERS: "1",
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    options.onSpawn(child.pid!);
    const logs: string[] = [];
    const keep = (chunk: Buffer) => {
      appendFileSync(join(options.logDir, `r${i + 1}.log`), chunk);
      logs.push(...chunk.toString("utf8").split("\n").filter((line) => line !== ""));
      if (logs.length > LOG_LINES_KEPT * 2) logs.splice(0, logs.length - LOG_LINES_KEPT);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const exited = once(child, "exit");
    const replica: ChaosReplica = {
      name: `r${i + 1}`,
      port: REPLICA_PORT,
      child,
      alive: true,
      frozen: false,
      net,
      ...clientsBySlot[i]!,
      logs,
      async kill(signal) {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        await exited;
      },
    };
    void exited.then(([code, signal]) => {
      replica.alive = false;
      if (stopping || expectedExit.has(replica)) return;
      crashes.push(`replica ${replica.name} (pid ${child.pid}) exited by itself (code ${code}, signal ${signal}); last log lines:\n${logs.slice(-12).join("\n")}`);
      if (slots[i] === replica) void set.restart(i).catch((error: unknown) => crashes.push(`replica ${replica.name} could not be restarted: ${String(error)}`));
    });
    return replica;
  };

  const serves = async (i: number, timeoutMs: number): Promise<boolean> => {
    try {
      await clientsBySlot[i]!.connect.getSession({ sessionId: UNKNOWN_SESSION_ID }, { timeoutMs });
      return true;
    } catch (error) {
      return SessionManagerError.from(error).code === Code.NotFound;
    }
  };

  const set: ReplicaSet = {
    slots,
    crashes,
    alive: () => slots.filter((replica) => replica.alive),
    clients: (i) => clientsBySlot[i]!,
    async kill(i) {
      const replica = slots[i]!;
      expectedExit.add(replica);
      await replica.kill("SIGKILL");
    },
    async restart(i) {
      const previous = slots[i];
      if (previous?.alive === true) {
        expectedExit.add(previous);
        await previous.kill("SIGKILL");
      }
      await waitFor(
        async () => {
          const replica = spawnReplica(i);
          slots[i] = replica;
          const up = await waitFor(async () => !replica.alive || (await serves(i, 2_000)), { timeoutMs: 30_000, intervalMs: 100 }).catch(() => false);
          if (up && replica.alive) return true;
          // It exited (e.g. the database was away at start) or never answered: try again.
          expectedExit.add(replica);
          await replica.kill("SIGKILL");
          return false;
        },
        { timeoutMs: 90_000, intervalMs: 500, message: () => `replica r${i + 1} to start; last log lines:\n${slots[i]?.logs.slice(-12).join("\n")}` },
      );
    },
    freeze(i) {
      const replica = slots[i]!;
      if (replica.alive) replica.child.kill("SIGSTOP");
      replica.frozen = true;
    },
    thaw(i) {
      const replica = slots[i]!;
      if (replica.alive) replica.child.kill("SIGCONT");
      replica.frozen = false;
    },
    serves,
    async stopAll() {
      stopping = true;
      await Promise.all(
        slots.map(async (replica) => {
          if (replica.frozen) replica.child.kill("SIGCONT");
          await replica.kill("SIGKILL");
        }),
      );
    },
  };
  await Promise.all(options.nets.map((_, i) => set.restart(i)));
  return set;
}
