/**
 * The feed served from a PostgreSQL hot standby (issue 15): writers on the
 * primary, WatchSessionEvents read from a streaming standby
 * (READ_DATABASE_URLS). One replication group (test/standby/replication-group.ts)
 * serves the whole file, in order: the WATCH.md traps, exactly-once with
 * resuming watchers, replay paused mid-stream, a cursor from a fresh write on
 * a lagging standby, a recovery conflict, the standby stopped mid-stream, and
 * the standby promoted mid-stream. Replicas are real servers in this process
 * (startTestApp), called over the network with real clients.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pino from "pino";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import type { Config } from "../../src/config.js";
import type { Sql } from "../../src/db/database.js";
import { isRecoveryConflict } from "../../src/db/errors.js";
import { createReadPools, type ReadOn } from "../../src/db/read-pools.js";
import { createFeed } from "../../src/feed/watch.js";
import { exportEvents } from "../../src/service/export.js";
import { comparePositions, decodeCursor, encodeCursor, type FeedPosition } from "../../src/domain/cursor.js";
import { checkSubscriber, type CheckResult } from "../replicas/feed-checker.js";
import { expectExactDelivery } from "../replicas/expect-delivery.js";
import { createSubscriber, runSubscriber, type Subscriber } from "../replicas/feed-subscriber.js";
import type { Replica, SessionClient } from "../replicas/replica-process.js";
import { runWriter } from "../replicas/session-writer.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { expectError } from "../support/rpc.js";
import { sleep, waitFor } from "../support/wait.js";
import { headCursor, insertEvent, insertSession } from "../feed/feed-helpers.js";
import { ulid } from "ulid";
import { Code } from "@connectrpc/connect";
import { startReplicationGroup, type ReplicationGroup } from "./replication-group.js";

let group: ReplicationGroup;
let primary: Sql;
let standby: Sql;

/**
 * Runs the test's own statement on the standby, again when replay cancels it
 * (the group's 100 ms max_standby_streaming_delay cancels any standby query
 * that holds replay up, the test's too, e.g. right after a long replay pause).
 */
async function onStandby<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (!isRecoveryConflict(error) || attempt >= 20) throw error;
    }
  }
}
const apps: App[] = [];

/** Starts a replica on the group: writes to the primary, the feed read from the standby. */
async function startReplica(overrides: Partial<Config> = {}): Promise<App> {
  const app = await startTestApp({ databaseUrl: group.primary.url, readDatabaseUrls: [group.standby.url], readReplayWaitMs: 5_000, ...overrides });
  apps.push(app);
  return app;
}

/** Presents an in-process app as the replicas helpers' Replica (name and clients; never killed). */
function asReplica(name: string, app: App): Replica {
  const baseUrl = `http://127.0.0.1:${app.port}`;
  return {
    name,
    port: app.port,
    alive: true,
    logs: [],
    grpc: createClient(SessionManagerService, createGrpcTransport({ baseUrl })),
    connect: createClient(SessionManagerService, createConnectTransport({ baseUrl, httpVersion: "1.1" })),
  } as unknown as Replica;
}

function clientOf(app: App): SessionClient {
  return createClient(SessionManagerService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}` }));
}

beforeAll(async () => {
  // A short streaming delay makes recovery conflicts cancel standby queries quickly (the feed must retry them).
  group = await startReplicationGroup({ max_standby_streaming_delay: "'100ms'", hot_standby_feedback: "off" });
  primary = postgres(group.primary.url, { max: 4, onnotice: () => {} });
  standby = postgres(group.standby.url, { max: 4, onnotice: () => {} });
});

afterAll(async () => {
  await Promise.allSettled(apps.map((app) => app.stop()));
  await Promise.allSettled([primary?.end({ timeout: 1 }), standby?.end({ timeout: 1 })]);
  await group?.close();
});

/** Collects the events of one stream until `signal` aborts. */
function watch(client: SessionClient, request: { userId?: string; afterCursor?: string; fromBeginning?: boolean }, signal: AbortSignal) {
  const events: { eventId: string; cursor: string; seq: bigint; type: string; sessionId: string }[] = [];
  const frames: string[] = [];
  const done = (async () => {
    try {
      for await (const response of client.watchSessionEvents(request, { signal })) {
        frames.push(response.frame.case ?? "");
        if (response.frame.case === "event") {
          const e = response.frame.value;
          events.push({ eventId: e.eventId, cursor: e.cursor, seq: e.seq, type: e.type, sessionId: e.sessionId });
        }
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  })();
  done.catch(() => {}); // a test that fails early never awaits it; awaiting it still rethrows
  return { events, frames, done };
}

/** Inserts a session and one event for `userId` in an open transaction on its own connection; commit or roll back later. */
async function openWrite(userId: string) {
  const reserved = await primary.reserve();
  await reserved`begin`;
  await reserved`select pg_advisory_xact_lock(hashtextextended(${userId}, 0))`;
  const sessionId = `sess_${ulid()}`;
  await insertSession(reserved as unknown as Sql, userId, sessionId);
  await insertEvent(reserved, { userId, sessionId, seq: 1, eventId: `evt_${ulid()}` });
  return {
    sessionId,
    async end(how: "commit" | "rollback") {
      await reserved.unsafe(how);
      reserved.release();
    },
  };
}

async function standbyHas(eventIds: string[]): Promise<number> {
  const [row] = await onStandby(() => standby<{ n: number }[]>`select count(*)::int as n from session_events where event_id = any(${eventIds}::text[])`);
  return row!.n;
}

/** The events' position in the feed (read on the primary). */
async function lastPosition(users: string[], sql: Sql = primary): Promise<FeedPosition | null> {
  const [row] = await sql<{ tx_id: string; id: string }[]>`
    select e.tx_id::text as tx_id, e.id from session_events as e where e.user_id = any(${users}::text[]) order by e.tx_id desc, e.id desc limit 1
  `;
  return row === undefined ? null : { txId: BigInt(row.tx_id), id: BigInt(row.id) };
}

interface Phase {
  users: string[];
  subscribers: Subscriber[];
  /** Stops the writers and waits for them. */
  stopWriters(): Promise<void>;
  /** Waits until every subscriber reached the last write, stops them and checks each against `sql`'s table. */
  finish(sql?: Sql): Promise<CheckResult[]>;
}

/**
 * Runs `writers` users' sessions (start, appends, end) through `writeTo`, and
 * per user a subscriber of that user plus one of everything, resuming on
 * `watchOn` replicas (cancelled every `churnMs`).
 */
async function startPhase(
  name: string,
  writeTo: () => Replica[],
  watchOn: () => Replica[],
  writers = 3,
  churnMs?: [number, number],
  sql: Sql = primary,
): Promise<Phase> {
  const users = Array.from({ length: writers }, (_, w) => uniqueId(`${name}-w${w}`));
  const subscribers = [
    ...users.map((userId) => createSubscriber(`${name}-${userId}`, { userId, types: [] }, "")),
    createSubscriber(`${name}-all`, { userId: "", types: [] }, await headCursor(sql)),
  ];
  const stopSubscribers = new AbortController();
  const subscribing = subscribers.map((subscriber, i) =>
    runSubscriber(subscriber, { replicas: watchOn, signal: stopSubscribers.signal, churnMs, grpc: i % 2 === 0, offset: i }),
  );
  const stopWriting = new AbortController();
  const writing = users.map((userId, w) =>
    runWriter({ userId, typePrefix: `care.${name}`, appendsPerSession: 3, replicas: writeTo, signal: stopWriting.signal, offset: w }),
  );
  return {
    users,
    subscribers,
    async stopWriters() {
      stopWriting.abort();
      await Promise.all(writing);
    },
    async finish(sql = primary) {
      stopWriting.abort();
      await Promise.all(writing);
      const last = (await lastPosition(users, sql))!;
      const behind = () => subscribers.filter((sub) => sub.cursor === "" || comparePositions(decodeCursor(sub.cursor), last) < 0);
      await waitFor(() => behind().length === 0, { timeoutMs: 30_000, intervalMs: 50, message: () => `subscribers to reach the last write: ${behind().map((s) => s.name)}` });
      stopSubscribers.abort();
      await Promise.all(subscribing);
      return Promise.all(subscribers.map((subscriber) => checkSubscriber(sql, subscriber)));
    },
  };
}


describe("the feed served from a hot standby", () => {
  let app: App;
  let client: SessionClient;

  beforeAll(async () => {
    app = await startReplica();
    await group.caughtUp(group.standby); // the migrations the replica applied on the primary
    client = clientOf(app);
  });

  it("reads the feed on the standby: nothing past a transaction open on the primary, both events once after it commits", async () => {
    const userA = uniqueId("late-a");
    const userB = uniqueId("late-b");
    const stop = new AbortController();
    const stream = watch(client, { afterCursor: await headCursor(primary) }, stop.signal);
    await waitFor(() => stream.frames.includes("caughtUp"));
    const open = await openWrite(userA); // A holds a lower transaction id, uncommitted
    const b = await client.startSession({ userId: userB, recordId: uniqueId("b") });
    await group.caughtUp(group.standby);
    expect(await standbyHas([b.event!.eventId])).toBe(1); // B is on the standby, yet withheld:
    await sleep(300); // nothing may be delivered while A is open
    expect(stream.events.map((e) => e.eventId)).toEqual([]);
    await open.end("commit");
    await waitFor(() => stream.events.length >= 2, { message: "A and B after A commits" });
    await sleep(100); // and nothing twice
    expect(stream.events.map((e) => e.sessionId)).toEqual([open.sessionId, b.session!.sessionId]);
    // The standby served it: its backends hold the replica's read connections.
    const [reads] = await standby<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where application_name = 'session-manager-reads'`;
    expect(reads!.n).toBeGreaterThan(0);
    stop.abort();
    await stream.done;
  });

  it("delivers a later commit without a stall when the open transaction rolls back", async () => {
    const stop = new AbortController();
    const stream = watch(client, { afterCursor: await headCursor(primary) }, stop.signal);
    await waitFor(() => stream.frames.includes("caughtUp"));
    const open = await openWrite(uniqueId("rollback-a"));
    const b = await client.startSession({ userId: uniqueId("rollback-b"), recordId: uniqueId("b") });
    await sleep(200); // withheld while A is open
    expect(stream.events).toEqual([]);
    await open.end("rollback");
    await waitFor(() => stream.events.length >= 1, { timeoutMs: 5_000, message: "B after A rolled back" });
    expect(stream.events.map((e) => e.eventId)).toEqual([b.event!.eventId]);
    stop.abort();
    await stream.done;
  });

  it("delivers exactly once, in causal order, to watchers that resume across replicas reading the standby", async () => {
    const second = await startReplica({ feedNotify: false }); // wakes by polling only
    const replicas = [asReplica("a", app), asReplica("b", second)];
    const phase = await startPhase("once", () => replicas, () => replicas, 3, [150, 400]);
    await sleep(2_500); // writers and churning watchers run
    const results = await phase.finish();
    expectExactDelivery(results);
    expect(results.reduce((n, r) => n + r.segments, 0)).toBeGreaterThan(results.length * 2);
    // Causal order: in delivery order, each session's seq is 1, 2, 3, ...
    const all = phase.subscribers.find((s) => s.name.endsWith("-all"))!;
    const rows = await primary<{ event_id: string; session_id: string; seq: number }[]>`
      select event_id, session_id, seq::int as seq from session_events where event_id = any(${all.deliveries.map((d) => d.eventId)}::text[])
    `;
    const byId = new Map(rows.map((row) => [row.event_id, row]));
    const lastSeq = new Map<string, number>();
    for (const delivery of all.deliveries) {
      const row = byId.get(delivery.eventId)!;
      expect(row.seq, `session ${row.session_id}`).toBe((lastSeq.get(row.session_id) ?? 0) + 1);
      lastSeq.set(row.session_id, row.seq);
    }
  });

  it("waits while replay is paused and delivers the rest, nothing skipped or repeated, after it resumes", async () => {
    const replicas = [asReplica("a", app)];
    const phase = await startPhase("pause", () => replicas, () => replicas);
    await waitFor(() => phase.subscribers.every((s) => s.deliveries.length > 0), { message: "first deliveries" });
    await onStandby(() => standby`select pg_wal_replay_pause()`);
    await waitFor(async () => (await onStandby(() => standby<{ state: string }[]>`select pg_get_wal_replay_pause_state() as state`))[0]!.state === "paused");
    const [before] = await primary<{ n: number }[]>`select count(*)::int as n from session_events where user_id = any(${phase.users}::text[])`;
    await waitFor(async () => {
      const [now] = await primary<{ n: number }[]>`select count(*)::int as n from session_events where user_id = any(${phase.users}::text[])`;
      return now!.n >= before!.n + 20;
    }, { message: "writes on the primary while replay is paused" });
    await sleep(300); // let any delivery that should not happen arrive
    // Whatever was delivered during the pause is on the standby: nothing past its replay.
    const delivered = phase.subscribers.flatMap((s) => s.deliveries.map((d) => d.eventId));
    expect(await standbyHas([...new Set(delivered)])).toBe(new Set(delivered).size);
    // And delivery has stopped although the writers go on.
    const settled = phase.subscribers.map((s) => s.deliveries.length);
    await sleep(300);
    expect(phase.subscribers.map((s) => s.deliveries.length)).toEqual(settled);
    await onStandby(() => standby`select pg_wal_replay_resume()`);
    expectExactDelivery(await phase.finish());
  });

  it("waits for a lagging standby to replay a fresh write's cursor, and answers INVALID_CURSOR past READ_REPLAY_WAIT_MS", async () => {
    const userId = uniqueId("lag");
    const started = await client.startSession({ userId, recordId: uniqueId("s") });
    await group.caughtUp(group.standby);
    await onStandby(() => standby`select pg_wal_replay_pause()`);
    try {
      const fresh = await client.appendSessionEvent({ sessionId: started.session!.sessionId, recordId: uniqueId("a"), type: "care.lag", source: "t" });
      const stop = new AbortController();
      const stream = watch(client, { userId, afterCursor: fresh.event!.cursor }, stop.signal);
      await sleep(400); // the standby has not replayed it: the call waits rather than failing
      expect(stream.frames).toEqual([]);
      await onStandby(() => standby`select pg_wal_replay_resume()`);
      await waitFor(() => stream.frames.includes("caughtUp"), { message: "the stream to open once replay reached the cursor" });
      const next = await client.appendSessionEvent({ sessionId: started.session!.sessionId, recordId: uniqueId("a"), type: "care.lag", source: "t" });
      await waitFor(() => stream.events.length > 0);
      expect(stream.events.map((e) => e.eventId)).toEqual([next.event!.eventId]);
      stop.abort();
      await stream.done;

      // Past the bound: INVALID_CURSOR; a cursor the primary never issued fails at once.
      const impatient = clientOf(await startReplica({ readReplayWaitMs: 300 }));
      await onStandby(() => standby`select pg_wal_replay_pause()`);
      const later = await client.appendSessionEvent({ sessionId: started.session!.sessionId, recordId: uniqueId("a"), type: "care.lag", source: "t" });
      const t0 = performance.now();
      await expectError(firstFrame(impatient, later.event!.cursor), Code.InvalidArgument, "INVALID_CURSOR");
      expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
      const never = encodeCursor({ txId: decodeCursor(later.event!.cursor).txId + 1_000_000n, id: 1n });
      const t1 = performance.now();
      await expectError(firstFrame(client, never), Code.InvalidArgument, "INVALID_CURSOR");
      expect(performance.now() - t1).toBeLessThan(1_000);
    } finally {
      await onStandby(() => standby`select pg_wal_replay_resume()`);
    }
  });

  it("never skips when a catch-up read lands on a node behind the tail (a fallback to a lagging standby)", async () => {
    // The tail reader reads on the primary, then the catch-up read lands on a standby that has
    // not replayed the rows up to the tail: the stream must wait for it, not jump to the tail.
    let target: Sql = primary;
    const read: ReadOn = (work) => work(target);
    const feed = createFeed({ sql: primary, read, pollMs: 20, heartbeatMs: 1_000, log: pino({ level: "silent" }) });
    const userId = uniqueId("behind");
    const before = await headCursor(primary);
    await onStandby(() => standby`select pg_wal_replay_pause()`);
    try {
      const sessionId = `sess_${ulid()}`;
      await insertSession(primary, userId, sessionId);
      const eventIds = [1, 2, 3].map(() => `evt_${ulid()}`);
      for (const [i, eventId] of eventIds.entries()) await insertEvent(primary, { userId, sessionId, seq: i + 1, eventId });
      const stop = new AbortController();
      const head = feed.watch({ userId: "", sessionId: "", types: [], afterCursor: "", fromBeginning: false }, stop.signal);
      await head.next(); // caught_up: the tail stands past the three events, read on the primary
      target = standby;
      const delivered: string[] = [];
      const stream = (async () => {
        for await (const frame of feed.watch({ userId, sessionId: "", types: [], afterCursor: before, fromBeginning: false }, stop.signal)) {
          if (frame.kind === "event") delivered.push(frame.event.eventId);
        }
      })();
      await sleep(300); // the standby has none of them: nothing yet, and the stream must not move past them
      expect(delivered).toEqual([]);
      await onStandby(() => standby`select pg_wal_replay_resume()`);
      await waitFor(() => delivered.length >= 3, { timeoutMs: 5_000, message: () => `the three events after replay resumed (got ${delivered.length})` });
      expect(delivered).toEqual(eventIds);
      stop.abort();
      feed.close();
      await stream;
    } finally {
      await onStandby(() => standby`select pg_wal_replay_resume()`);
      feed.close();
    }
  });

  it("without standbys, accepts a fresh write's cursor while an older transaction holds the horizon back", async () => {
    // The same wait serves a lone primary: a write's cursor lies ahead of the horizon while an older
    // transaction is open; it was answered INVALID_CURSOR before READ_REPLAY_WAIT_MS existed.
    const aloneApp = await startTestApp({ databaseUrl: group.primary.url });
    apps.push(aloneApp);
    const alone = clientOf(aloneApp);
    const userId = uniqueId("alone");
    const open = await openWrite(uniqueId("alone-open"));
    try {
      const fresh = await alone.startSession({ userId, recordId: uniqueId("s") });
      const stop = new AbortController();
      const stream = watch(alone, { userId, afterCursor: fresh.event!.cursor }, stop.signal);
      await sleep(200);
      expect(stream.frames).toEqual([]); // waiting for the horizon, not failed
      await open.end("commit");
      await waitFor(() => stream.frames.includes("caughtUp"), { message: "the stream to open once the open transaction committed" });
      stop.abort();
      await stream.done;
    } finally {
      await open.end("rollback").catch(() => {});
    }
  });

  it("exports from the standby, and routes unary reads there only with READ_CONSISTENCY=replica", async () => {
    const userId = uniqueId("export");
    const started = await client.startSession({ userId, recordId: uniqueId("s") });
    await group.caughtUp(group.standby);
    const replicaReads = clientOf(await startReplica({ readConsistency: "replica" }));
    await onStandby(() => standby`select pg_wal_replay_pause()`);
    const pools = createReadPools({ primary, urls: [group.standby.url], max: 2, log: pino({ level: "silent" }) });
    try {
      const appended = await client.appendSessionEvent({ sessionId: started.session!.sessionId, recordId: uniqueId("a"), type: "care.x", source: "t" });
      const exported = async () => {
        const lines: string[] = [];
        const sink = { begin: async () => {}, write: async (text: string) => void lines.push(...text.trimEnd().split("\n")) };
        await exportEvents(primary, { kind: "feed", filter: { userId, after: null, until: null, trainingDataOnly: false } }, sink, pools.read);
        return lines.map((line) => (JSON.parse(line) as { id: string }).id);
      };
      // The standby has not replayed the append: the export (a snapshot of the standby) leaves it out.
      expect(await exported()).toEqual([started.event!.eventId]);
      // Unary reads: the primary by default (read-your-writes), the lagging standby with replica.
      const fromPrimary = await client.listSessionEvents({ sessionId: started.session!.sessionId });
      expect(fromPrimary.events.map((e) => e.eventId)).toEqual([started.event!.eventId, appended.event!.eventId]);
      const fromStandby = await replicaReads.listSessionEvents({ sessionId: started.session!.sessionId });
      expect(fromStandby.events.map((e) => e.eventId)).toEqual([started.event!.eventId]);
      await onStandby(() => standby`select pg_wal_replay_resume()`);
      await group.caughtUp(group.standby);
      expect(await exported()).toEqual([started.event!.eventId, appended.event!.eventId]);
    } finally {
      await onStandby(() => standby`select pg_wal_replay_resume()`);
      await pools.close();
    }
  });

  it("retries a read the standby cancels for a recovery conflict instead of failing it", async () => {
    await primary`create table conflict_probe (id int)`;
    await primary`insert into conflict_probe values (1)`;
    await group.caughtUp(group.standby);
    const pools = createReadPools({ primary, urls: [group.standby.url], max: 1, log: pino({ level: "silent" }) });
    try {
      let attempts = 0;
      const reading = pools.read(async (sql) => {
        attempts += 1;
        if (attempts > 1) return (await sql<{ recovery: boolean }[]>`select pg_is_in_recovery() as recovery`)[0]!.recovery;
        // Holds a lock the replay of DROP TABLE must take: after max_standby_streaming_delay the standby cancels it.
        return sql.begin(async (tx) => {
          await tx`select count(*) from conflict_probe`;
          await tx`select pg_sleep(10)`;
          return false;
        });
      });
      await sleep(100);
      await primary`drop table conflict_probe`;
      expect(await reading).toBe(true); // answered by the standby on the second attempt
      expect(attempts).toBe(2);
      expect(pools.fallbacks().get(`127.0.0.1:${group.standby.port}`)).toBe(0);
    } finally {
      await pools.close();
    }
  });

  it("falls back to the primary when the standby stops mid-stream; streams continue exactly once", async () => {
    const replicas = [asReplica("a", app)];
    const phase = await startPhase("stopped", () => replicas, () => replicas);
    await waitFor(() => phase.subscribers.every((s) => s.deliveries.length > 0), { message: "first deliveries" });
    await group.stop(group.standby);
    const atStop = phase.subscribers.map((s) => s.deliveries.length);
    await waitFor(() => phase.subscribers.every((s, i) => s.deliveries.length > atStop[i]! + 5), { timeoutMs: 20_000, message: "deliveries from the primary" });
    const results = await phase.finish();
    expectExactDelivery(results);
    const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`session_manager_standby_read_fallbacks_total\\{standby="127.0.0.1:${group.standby.port}"\\} [1-9]`));
    expect(metrics, metrics.split("\n").filter((line) => line.includes("standby")).join("\n")).toMatch(
      new RegExp(`session_manager_standby_replay_lag_seconds\\{standby="127.0.0.1:${group.standby.port}"\\} Na[Nn]`), // prom-client writes "Nan"
    );
    await group.start(group.standby);
    await group.caughtUp(group.standby);
    await waitFor(async () => /session_manager_standby_replay_lag_seconds\{standby="[^"]+"\} 0\b/.test(await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text()), {
      timeoutMs: 10_000,
      message: "the lag gauge once the standby is back",
    });
  });

  it("keeps the same cursors working when the standby is promoted mid-stream", async () => {
    const old = asReplica("old", app);
    let writeTo = [old];
    let promoted: Replica | null = null;
    const watchOn = () => (promoted === null ? [old] : [old, promoted]);
    const phase = await startPhase("promote", () => writeTo, watchOn, 3, [200, 500]);
    await waitFor(() => phase.subscribers.every((s) => s.deliveries.length > 0), { message: "first deliveries" });
    await phase.stopWriters(); // a failover loses what the standby has not received; here it receives everything
    await group.stop(group.primary); // a clean stop sends the standby the last WAL
    await group.promote(group.standby);
    const next = await startTestApp({ databaseUrl: group.standby.url }); // the promoted node is the new primary
    apps.push(next);
    promoted = asReplica("promoted", next);
    writeTo = [promoted];
    const promotedSql = postgres(group.standby.url, { max: 2, onnotice: () => {} });
    try {
      const resumed = await startPhase("promoted", () => writeTo, watchOn, 2, [200, 500], promotedSql);
      await sleep(1_500);
      // Watchers that started before the failover resume with their cursors on either replica.
      const results = [...(await phase.finish(promotedSql)), ...(await resumed.finish(promotedSql))];
      expectExactDelivery(results);
    } finally {
      await promotedSql.end();
    }
  });
});

/** Opens a stream after `cursor` and resolves with its first frame (or rejects with its error). */
async function firstFrame(client: SessionClient, afterCursor: string): Promise<string> {
  const stop = new AbortController();
  try {
    for await (const response of client.watchSessionEvents({ afterCursor }, { signal: stop.signal })) return response.frame.case ?? "";
    return "";
  } finally {
    stop.abort();
  }
}
