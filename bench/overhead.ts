/**
 * What metrics, tracing and credential checks cost per call
 * (`npm run bench:overhead`; not a test). One embedded PostgreSQL 18 and
 * `session-manager serve` processes (WORKERS=1), each measured with h2load
 * sending GetSession over gRPC (h2c, the grpc-js adapter; one connection,
 * BENCH_CONNECTIONS streams) for BENCH_SECONDS after a warm-up:
 *
 *   floor        AUTH=off, METRICS=off, no OpenTelemetry SDK
 *   + metrics    METRICS=on
 *   + tracing    METRICS=on and the OpenTelemetry SDK exporting every span
 *                (always_on) over OTLP/HTTP to a local receiver that drops them
 *   + API key    METRICS=on, AUTH=required, a reader key (read from the
 *                database once per AUTH_CACHE_MS)
 *   + JWT        the same server, an ES256 JWT for the session's own user
 *                (verified once, then cached; the user scope costs one
 *                indexed read per call)
 *
 * Prints rate, mean/max latency, the server's CPU ms per call (from /proc)
 * and each row's ratio to the floor.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { SignJWT, exportSPKI, generateKeyPair } from "jose";
import { GetSessionRequestSchema } from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import { openDatabase, startEmbeddedPostgres } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";
import { createLogger } from "../src/log.js";
import { createKey } from "../src/service/api-keys.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROOT = new URL("..", import.meta.url).pathname;
const TICK_MS = 10; // /proc clock ticks (USER_HZ = 100 on Linux)

const tmp = mkdtempSync(join(os.tmpdir(), "session-manager-overhead-"));
chmodSync(tmp, 0o755);
const children: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

async function serve(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/index.ts", "serve"], {
    cwd: ROOT,
    // Tracing only where a row asks for it, whatever the caller's environment says.
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), WORKERS: "1", LOG_LEVEL: "warn", SWEEP_INTERVAL_MS: "0", OTEL_SDK_DISABLED: "true", ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(child);
  for (let i = 0; i < 200; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => (socket.end(), resolve(true))).on("error", () => resolve(false));
    });
    if (up) return { child, port };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("server did not start");
}

function h2load(port: number, body: string, headers: string[]): Promise<string> {
  const args = ["-c", "1", "-m", String(CONNECTIONS), "-t", "1", "-D", String(SECONDS), "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"];
  for (const header of headers) args.push("-H", header);
  args.push(`http://127.0.0.1:${port}/sessionmanager.v1.SessionManagerService/GetSession`);
  return new Promise((resolve, reject) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("close", () => resolve(out));
  });
}

interface Row {
  name: string;
  rate: number;
  mean: string;
  max: string;
  cpuMsPerCall: number;
}

async function measure(name: string, pid: number, port: number, body: string, headers: string[]): Promise<Row> {
  await h2load(port, body, headers); // warm-up (and the JWKS / key cache)
  const before = cpuMs(pid);
  const out = await h2load(port, body, headers);
  const used = cpuMs(pid) - before;
  const rate = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1] ?? Number.NaN);
  const succeeded = Number(/(\d+) succeeded/.exec(out)?.[1] ?? Number.NaN);
  // h2load: "time for request: min max mean sd +/- sd" (it prints no percentiles).
  const time = /time for request:\s+\S+\s+(\S+)\s+(\S+)/.exec(out);
  return { name, rate, max: time?.[1] ?? "?", mean: time?.[2] ?? "?", cpuMsPerCall: used / succeeded };
}

async function main(): Promise<void> {
  const db = await startEmbeddedPostgres({ dir: join(tmp, "pg"), port: await freePort(), log: createLogger("silent") });
  try {
    const sql = openDatabase({ url: db.url, max: 2 });
    await migrate(sql);
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const keyFile = join(tmp, "jwt.pem");
    writeFileSync(keyFile, await exportSPKI(publicKey));
    // An OTLP/HTTP receiver that accepts and drops every export.
    let exports = 0;
    let exportedBytes = 0;
    const sink = http.createServer((req, res) => {
      exports++;
      req.on("data", (chunk: Buffer) => (exportedBytes += chunk.length));
      req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
    });
    await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
    const open = await serve({ DATABASE_URL: db.url, AUTH: "off", METRICS: "off" });
    const metered = await serve({ DATABASE_URL: db.url, AUTH: "off", METRICS: "on" });
    const traced = await serve({
      DATABASE_URL: db.url,
      AUTH: "off",
      METRICS: "on",
      OTEL_SDK_DISABLED: "false",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(sink.address() as net.AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_TRACES_SAMPLER: "always_on",
    });
    const secured = await serve({ DATABASE_URL: db.url, AUTH: "required", METRICS: "on", JWT_PUBLIC_KEY_FILE: keyFile });

    const userId = "bench-auth-user";
    const started = await fetch(`http://127.0.0.1:${open.port}/sessionmanager.v1.SessionManagerService/StartSession`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ recordId: "bench-auth", userId }),
    }).then((r) => r.json() as Promise<{ session: { sessionId: string } }>);
    const message = toBinary(GetSessionRequestSchema, create(GetSessionRequestSchema, { sessionId: started.session.sessionId }));
    const framed = Buffer.alloc(5 + message.length);
    framed.writeUInt32BE(message.length, 1);
    framed.set(message, 5);
    const body = join(tmp, "get.grpc");
    writeFileSync(body, framed);

    const { token: apiKey } = await createKey(sql, "bench", "reader");
    const jwt = await new SignJWT({ sub: userId }).setProtectedHeader({ alg: "ES256" }).setExpirationTime("1h").sign(privateKey);
    await sql.end();

    const rows = [
      await measure("floor: AUTH=off, METRICS=off, no tracing", open.child.pid!, open.port, body, []),
      await measure("+ metrics", metered.child.pid!, metered.port, body, []),
      await measure("+ metrics + tracing (every span exported)", traced.child.pid!, traced.port, body, []),
      await measure("+ metrics + API key (reader)", secured.child.pid!, secured.port, body, [`authorization: Bearer ${apiKey}`]),
      await measure("+ metrics + JWT (ES256, own user)", secured.child.pid!, secured.port, body, [`authorization: Bearer ${jwt}`]),
    ];
    sink.close();
    const floor = rows[0]!;
    console.log(`\nGetSession over gRPC h2c, h2load -c1 -m${CONNECTIONS}, ${SECONDS} s each; Node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(2)}\n`);
    console.log("| server | req/s | mean | max | server CPU ms/call | rate vs floor | CPU vs floor |");
    console.log("|---|---:|---:|---:|---:|---:|---:|");
    for (const row of rows) {
      console.log(
        `| ${row.name} | ${row.rate.toFixed(0)} | ${row.mean} | ${row.max} | ${row.cpuMsPerCall.toFixed(3)} | ${(row.rate / floor.rate).toFixed(2)}x | ${(row.cpuMsPerCall / floor.cpuMsPerCall).toFixed(2)}x |`,
      );
    }
    console.log(`\nThe tracing row's server sent ${exports} OTLP exports (${(exportedBytes / 1e6).toFixed(1)} MB of JSON) to the local receiver.`);
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once("exit", resolve)))));
    await db.stop();
  }
}

await main();
