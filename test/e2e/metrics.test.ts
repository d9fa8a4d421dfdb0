/**
 * What an operator scrapes and probes, over a real socket: exact RPC counters
 * after a scripted run over gRPC, Connect JSON and gRPC-Web (no label with an
 * id in it); the Watch stream gauge and delivery lag; the horizon age rising
 * while a transaction stays open and falling back when it ends; lapsed
 * sessions pending going up and down and the sweeper's count; /healthz, and
 * /readyz turning 503 while the database is unreachable and 200 when it is
 * back; METRICS_PORT. Each replica here has its own database, so the
 * database gauges are exact.
 */
import net from "node:net";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { waitFor } from "../support/wait.js";

type SessionClient = Client<typeof SessionManagerService>;
const SERVICE = "sessionmanager.v1.SessionManagerService";
const UNKNOWN_SESSION = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";

let db: IsolatedDatabase;
let app: App;

beforeAll(async () => {
  db = await createIsolatedDatabase("sm_metrics");
  app = await startTestApp({ databaseUrl: db.url, metricsDbCacheMs: 50, watchHeartbeatMs: 200 });
});
afterAll(async () => {
  await app?.stop();
  await db?.drop();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (comments skipped). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not Prometheus text: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape(port = app.port): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

/** The value of the one sample with `name` and (at least) `labels`; 0 when there is none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found.length, `${name} ${JSON.stringify(labels)}`).toBeLessThanOrEqual(1);
  return found[0]?.value ?? 0;
}

const rpc = (method: string, protocol: string, type = "unary") => ({ grpc_service: SERVICE, grpc_method: method, protocol, grpc_type: type });

describe("/metrics", () => {
  it("counts every RPC by method, type, code and protocol, exactly, with no id in any label", async () => {
    const base = `http://127.0.0.1:${app.port}`;
    const grpc: SessionClient = createClient(SessionManagerService, createGrpcTransport({ baseUrl: base }));
    const connect: SessionClient = createClient(SessionManagerService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    const grpcWeb: SessionClient = createClient(SessionManagerService, createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }));
    const userId = uniqueId("metrics-user");

    const { session } = await grpc.startSession({ recordId: uniqueId("rec"), userId });
    const sessionId = session!.sessionId;
    await grpc.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.note", source: "t" });
    await grpc.getSession({ sessionId: UNKNOWN_SESSION }).catch(() => {});
    await connect.getSession({ sessionId });
    await connect.getSession({ sessionId });
    await grpcWeb.listSessions({ userId });

    // A Watch stream over gRPC: two events, caught_up, then a heartbeat; open while scraped, then canceled.
    const controller = new AbortController();
    let frames = 0;
    let heartbeat = false;
    const watching = (async () => {
      try {
        for await (const frame of grpc.watchSessionEvents({ userId, fromBeginning: true }, { signal: controller.signal })) {
          frames++;
          if (frame.frame.case === "heartbeat") heartbeat = true;
        }
      } catch {
        // canceled below
      }
    })();
    await waitFor(() => heartbeat, { message: "a heartbeat frame" });
    const open = await scrape();
    expect(value(open, "session_manager_watch_streams", { protocol: "grpc" })).toBe(1);
    expect(value(open, "grpc_server_started_total", rpc("WatchSessionEvents", "grpc", "server_stream"))).toBe(1);
    expect(value(open, "session_manager_feed_delivery_lag_seconds_count")).toBe(2);
    expect(value(open, "grpc_server_msg_sent_total", rpc("WatchSessionEvents", "grpc", "server_stream"))).toBe(frames);
    controller.abort();
    await watching;

    await waitFor(async () => value(await scrape(), "session_manager_watch_streams", { protocol: "grpc" }) === 0, { message: "the stream gauge back to 0" });
    const samples = await scrape();
    const handled = (method: string, protocol: string, code: string, type = "unary") => value(samples, "grpc_server_handled_total", { ...rpc(method, protocol, type), grpc_code: code });
    expect(handled("StartSession", "grpc", "OK")).toBe(1);
    expect(handled("AppendSessionEvent", "grpc", "OK")).toBe(1);
    expect(handled("GetSession", "grpc", "NotFound")).toBe(1);
    expect(handled("GetSession", "connect", "OK")).toBe(2);
    expect(handled("ListSessions", "grpc_web", "OK")).toBe(1);
    expect(handled("WatchSessionEvents", "grpc", "Canceled", "server_stream")).toBe(1);
    expect(value(samples, "grpc_server_started_total", rpc("GetSession", "connect"))).toBe(2);
    expect(value(samples, "grpc_server_msg_received_total", rpc("GetSession", "connect"))).toBe(2);
    expect(value(samples, "grpc_server_msg_sent_total", rpc("GetSession", "grpc"))).toBe(0);
    expect(value(samples, "grpc_server_handling_seconds_count", { ...rpc("GetSession", "connect"), grpc_code: "OK" })).toBe(2);
    expect(value(samples, "session_manager_sessions", { state: "active" })).toBe(1);
    expect(value(samples, "session_manager_sessions", { state: "paused" })).toBe(0);
    expect(samples.some((s) => s.name === "nodejs_eventloop_lag_seconds")).toBe(true);

    for (const sample of samples) {
      for (const label of Object.values(sample.labels)) {
        expect(label).not.toMatch(/sess_|evt_|rec-|metrics-user|care\./);
      }
    }

    // Events and session durations are counted after commit: started + appended, then ended.
    expect(value(samples, "session_manager_events_appended_total")).toBe(2);
    await grpc.endSession({ recordId: uniqueId("rec"), sessionId });
    const ended = await scrape();
    expect(value(ended, "session_manager_events_appended_total")).toBe(3);
    expect(value(ended, "session_manager_session_duration_seconds_count", { end_reason: "client" })).toBe(1);
    // The sessions gauge is read from the database and cached for METRICS_DB_CACHE_MS (50 here): a
    // scrape within 50 ms of the previous one may still show the session active.
    await waitFor(async () => value(await scrape(), "session_manager_sessions", { state: "active" }) === 0, { message: "the active sessions gauge back to 0" });
  });

  it("shows the horizon age rising while a transaction with an id stays open, and falling back when it ends", async () => {
    const holder = await db.sql.reserve();
    try {
      await holder`begin`;
      await holder`select pg_current_xact_id()`; // assigns a transaction id: the feed's horizon stops here
      await waitFor(async () => value(await scrape(), "session_manager_feed_horizon_age_seconds") >= 1, { message: "horizon age >= 1 s" });
      await holder`commit`;
    } finally {
      holder.release();
    }
    await waitFor(async () => value(await scrape(), "session_manager_feed_horizon_age_seconds") < 1, { message: "horizon age back under 1 s" });
  });

  it("counts lapsed sessions pending until they are ended, and what the sweeper ended", async () => {
    const grpc: SessionClient = createClient(SessionManagerService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}` }));
    const before = value(await scrape(), "session_manager_sweeper_lapsed_pending");
    const userId = uniqueId("metrics-lapse");
    const { session } = await grpc.startSession({ recordId: uniqueId("rec"), userId });
    await db.sql`update sessions set expire_time = now() - interval '1 second' where session_id = ${session!.sessionId}`;
    await waitFor(async () => value(await scrape(), "session_manager_sweeper_lapsed_pending") === before + 1, { message: "one more pending" });

    // A second replica on the same database, with its sweeper on, ends it.
    const sweeping = await startTestApp({ databaseUrl: db.url, sweepIntervalMs: 100, metricsDbCacheMs: 50 });
    try {
      await waitFor(async () => value(await scrape(sweeping.port), "session_manager_sweeper_lapsed_pending") === before, { message: "pending back down" });
      await waitFor(async () => value(await scrape(sweeping.port), "session_manager_sweeper_ended_total") >= 1, { message: "the sweeper's count" });
      expect(value(await scrape(sweeping.port), "session_manager_sweeper_pass_seconds_count")).toBeGreaterThanOrEqual(1);
      expect(value(await scrape(sweeping.port), "session_manager_session_duration_seconds_count", { end_reason: "idle_timeout" })).toBe(1);
    } finally {
      await sweeping.stop();
    }
  });

  it("is served on METRICS_PORT instead of the service port when that is set", async () => {
    const port = await freePort();
    const separate = await startTestApp({ databaseUrl: db.url, metricsPort: port });
    try {
      expect(value(await scrape(port), "session_manager_sessions", { state: "paused" })).toBe(0);
      expect((await fetch(`http://127.0.0.1:${separate.port}/metrics`)).status).not.toBe(200);
      expect((await fetch(`http://127.0.0.1:${separate.port}/readyz`)).status).toBe(200);
    } finally {
      await separate.stop();
    }
  });
});

describe("/healthz and /readyz", () => {
  it("answers liveness always, and readiness 503 while the database is unreachable and 200 when it is back", async () => {
    const target = new URL(db.url);
    const proxy = createProxy(Number(target.port), target.hostname);
    const port = await proxy.open();
    const url = new URL(db.url);
    url.port = String(port);
    const probed = await startTestApp({ databaseUrl: url.toString() });
    const status = async (path: string) => (await fetch(`http://127.0.0.1:${probed.port}${path}`)).status;
    try {
      expect(await status("/healthz")).toBe(200);
      expect(await status("/readyz")).toBe(200);
      await proxy.close();
      await waitFor(async () => (await status("/readyz")) === 503, { message: "readyz 503 with the database gone" });
      expect(await status("/healthz")).toBe(200);
      await proxy.open(port);
      await waitFor(async () => (await status("/readyz")) === 200, { message: "readyz 200 again" });
    } finally {
      await probed.stop();
      await proxy.close();
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A TCP proxy to the database that the test can cut (closing every connection) and restore on the same port. */
function createProxy(targetPort: number, targetHost: string) {
  let server: net.Server | null = null;
  const sockets = new Set<net.Socket>();
  return {
    open(port = 0): Promise<number> {
      server = net.createServer((client) => {
        const upstream = net.connect(targetPort, targetHost);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on("close", () => sockets.delete(socket));
          socket.on("error", () => {});
        }
        client.pipe(upstream).pipe(client);
      });
      return new Promise((resolve) => server!.listen(port, "127.0.0.1", () => resolve((server!.address() as net.AddressInfo).port)));
    },
    close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      const closing = server;
      server = null;
      return closing === null ? Promise.resolve() : new Promise((resolve) => closing.close(() => resolve()));
    },
  };
}
