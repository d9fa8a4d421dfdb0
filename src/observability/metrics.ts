/**
 * Prometheus metrics (prom-client) of one replica; README, "Metrics", lists
 * each with its type, labels and what to alert on.
 *
 * - RPCs, for every protocol and both adapters: the go-grpc-prometheus names
 *   and labels plus `protocol`, fed by the access interceptor (CallObserver).
 * - The feed: open Watch streams by protocol, delivery lag, fallbacks of slow
 *   streams to table reads, and the horizon age.
 * - Sessions and the sweeper.
 * - Hot standbys (with READ_DATABASE_URLS): replay lag and read fallbacks per standby.
 * - Node's default process metrics (event-loop lag, heap, GC).
 *
 * Gauges read from the database (sessions by state, lapsed sessions pending,
 * horizon age) come from ONE query, run at most once per `dbCacheMs` however
 * many scrapes arrive. They describe the whole database, so every replica
 * reports the same value (aggregate them with max, not sum).
 *
 * No label carries a user id, session id, record id or event type: unbounded
 * cardinality, and personal data.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Sql } from "../db/database.js";
import type { ReadPools } from "../db/read-pools.js";
import { readDatabaseGauges, type DatabaseGauges } from "../db/metrics-repository.js";
import type { CommitReport } from "../service/commits.js";

/** What the access interceptor reports about each call. */
export interface CallLabels {
  /** "unary" or "server_stream" (go-grpc-prometheus grpc_type). */
  type: "unary" | "server_stream" | "client_stream" | "bidi_stream";
  service: string;
  method: string;
  protocol: "grpc" | "grpc_web" | "connect";
}

/** Receives each call's start, frames and end (src/transport/interceptors.ts). */
export interface CallObserver {
  /** Returns the function to call per response message sent, and the one to call at the end with the code name ("OK", "InvalidArgument", ...). */
  started(call: CallLabels): { sent(): void; finished(code: string, seconds: number): void };
}

/** Configures `createMetrics`. */
export interface MetricsOptions {
  sql: Sql;
  /** How long the database gauges are reused, in ms (METRICS_DB_CACHE_MS). */
  dbCacheMs: number;
  /** Frames of slow streams that fell back to table reads so far (the feed's TailStats.overflows). */
  fallbacks(): number;
  /** The hot standbys (READ_DATABASE_URLS) whose replay lag and fallbacks are exported; none when absent. */
  standbys?: Pick<ReadPools, "replayLag" | "fallbacks">;
}

/** The replica's metrics. */
export interface Metrics extends CallObserver {
  registry: Registry;
  /** Observes one event frame handed to a Watch stream, `receiveTime` being when the event was stored. */
  delivered(receiveTime: Date): void;
  /** Records one sweeper pass. */
  swept(ended: number, seconds: number): void;
  /** Counts what a committed transaction wrote: its events, and the duration of each session it ended. */
  committed(report: CommitReport): void;
}

const SESSION_STATES = ["active", "paused"] as const;

type RpcLabels = Record<"grpc_type" | "grpc_service" | "grpc_method" | "protocol", string>;

/**
 * What the calls of one label set counted, in plain numbers; the counters
 * add what is new when they are collected (scraped). prom-client's `inc`
 * hashes the label set on every call: four times per unary call, and once
 * per frame a Watch stream sends (with 10,000 streams, 20,000 frames/s:
 * about 3% of the replica's CPU in bench:watch).
 */
class RpcCounts {
  /** Calls started; grpc_server_msg_received_total counts one request message per call from it (every method but health's Watch takes exactly one). */
  started = 0;
  sent = 0;
  /** Finished calls by grpc_code. */
  readonly handled = new Map<string, number>();
  /** How much of each count the counters already hold. */
  readonly added = { started: 0, received: 0, sent: 0, handled: new Map<string, number>() };

  constructor(readonly labels: RpcLabels) {}
}

/** Creates the replica's registry and metrics. */
export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const rpcLabels = ["grpc_type", "grpc_service", "grpc_method", "protocol"] as const;
  const counts = new Map<string, RpcCounts>();
  /** A counter's collect: adds what `count` grew by since `counter` last collected. */
  const addNew = (counter: "started" | "received" | "sent", count: "started" | "sent") =>
    function collect(this: Counter<string>): void {
      for (const rpc of counts.values()) {
        this.inc(rpc.labels, rpc[count] - rpc.added[counter]);
        rpc.added[counter] = rpc[count];
      }
    };
  new Counter({ name: "grpc_server_started_total", help: "RPCs started on the server.", labelNames: rpcLabels, registers: [registry], collect: addNew("started", "started") });
  new Counter({
    name: "grpc_server_handled_total",
    help: "RPCs completed on the server, whatever their status.",
    labelNames: [...rpcLabels, "grpc_code"],
    registers: [registry],
    collect() {
      for (const rpc of counts.values()) {
        for (const [code, n] of rpc.handled) {
          this.inc({ ...rpc.labels, grpc_code: code }, n - (rpc.added.handled.get(code) ?? 0));
          rpc.added.handled.set(code, n);
        }
      }
    },
  });
  new Counter({ name: "grpc_server_msg_received_total", help: "Request messages received.", labelNames: rpcLabels, registers: [registry], collect: addNew("received", "started") });
  new Counter({ name: "grpc_server_msg_sent_total", help: "Response messages sent.", labelNames: rpcLabels, registers: [registry], collect: addNew("sent", "sent") });
  const handling = new Histogram({
    name: "grpc_server_handling_seconds",
    help: "Time from the start of an RPC to its end (for streams: how long the stream was open), in seconds.",
    labelNames: [...rpcLabels, "grpc_code"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const watchStreams = new Gauge({
    name: "session_manager_watch_streams",
    help: "Open WatchSessionEvents streams on this replica.",
    labelNames: ["protocol"],
    registers: [registry],
    aggregator: "sum",
  });
  const lag = new Histogram({
    name: "session_manager_feed_delivery_lag_seconds",
    help: "From an event's receive_time (its commit) to its frame being handed to a Watch stream, in seconds.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: "session_manager_watch_fallbacks_total",
    help: "Watch streams detached to catch-up reads of the table because they fell WATCH_QUEUE_FRAMES behind.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(options.fallbacks());
    },
  });
  void fallbacks;
  const eventsAppended = new Counter({
    name: "session_manager_events_appended_total",
    help: "Events this replica committed to the log (workers' and lifecycle events).",
    registers: [registry],
  });
  const sessionDuration = new Histogram({
    name: "session_manager_session_duration_seconds",
    help: "How long sessions lasted (start_time to end_time), observed by the replica that ended them, by end_reason.",
    labelNames: ["end_reason"],
    buckets: [1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400],
    registers: [registry],
  });
  const sweeperEnded = new Counter({ name: "session_manager_sweeper_ended_total", help: "Lapsed sessions this replica's sweeper ended.", registers: [registry] });
  const sweeperPass = new Histogram({
    name: "session_manager_sweeper_pass_seconds",
    help: "Duration of one sweeper pass (every batch until one comes back short), in seconds.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  let cached: { at: number; value: Promise<DatabaseGauges | null> } | null = null;
  const databaseGauges = (): Promise<DatabaseGauges | null> => {
    const now = performance.now();
    if (cached === null || now - cached.at >= options.dbCacheMs) {
      cached = { at: now, value: readDatabaseGauges(options.sql).catch(() => null) };
    }
    return cached.value;
  };
  new Gauge({
    name: "session_manager_sessions",
    help: "Open sessions by state, in the whole database (the same from every replica).",
    labelNames: ["state"],
    registers: [registry],
    aggregator: "max",
    async collect() {
      const gauges = await databaseGauges();
      for (const state of SESSION_STATES) this.set({ state }, gauges?.[state] ?? Number.NaN);
    },
  });
  new Gauge({
    name: "session_manager_sweeper_lapsed_pending",
    help: "Open sessions past their deadline (idle timeout or max duration) that no one has ended yet, in the whole database.",
    registers: [registry],
    aggregator: "max",
    async collect() {
      this.set((await databaseGauges())?.lapsedPending ?? Number.NaN);
    },
  });
  new Gauge({
    name: "session_manager_feed_horizon_age_seconds",
    help: "Age of the oldest transaction holding the feed's visibility horizon back: how long new events are currently held from every subscriber, in seconds.",
    registers: [registry],
    aggregator: "max",
    async collect() {
      this.set((await databaseGauges())?.horizonAgeSeconds ?? Number.NaN);
    },
  });

  const standbys = options.standbys;
  if (standbys !== undefined) {
    new Gauge({
      name: "session_manager_standby_replay_lag_seconds",
      help: "How far each hot standby (READ_DATABASE_URLS, labelled host:port) trails in replay: 0 when it has replayed all it received, else the age of its last replayed commit, in seconds; NaN while unreachable. The feed served from it is that much behind.",
      labelNames: ["standby"],
      registers: [registry],
      aggregator: "max",
      async collect() {
        for (const { standby, seconds } of await standbys.replayLag()) this.set({ standby }, seconds ?? Number.NaN);
      },
    });
    new Counter({
      name: "session_manager_standby_read_fallbacks_total",
      help: "Reads that left a hot standby for the next node (another standby, then the primary) because it was unreachable or kept cancelling them for recovery conflicts.",
      labelNames: ["standby"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [standby, count] of standbys.fallbacks()) this.inc({ standby }, count);
      },
    });
  }

  /** One call's observations (a class: every open stream holds one). */
  class ObservedCall {
    constructor(
      private readonly rpc: RpcCounts,
      private readonly watching: boolean,
    ) {}

    sent(): void {
      this.rpc.sent++;
    }

    finished(code: string, seconds: number): void {
      const { rpc } = this;
      if (this.watching) watchStreams.dec({ protocol: rpc.labels.protocol });
      rpc.handled.set(code, (rpc.handled.get(code) ?? 0) + 1);
      handling.observe({ ...rpc.labels, grpc_code: code }, seconds);
    }
  }

  return {
    registry,
    started(call) {
      const key = `${call.type}\u0000${call.service}\u0000${call.method}\u0000${call.protocol}`;
      let rpc = counts.get(key);
      if (rpc === undefined) {
        rpc = new RpcCounts({ grpc_type: call.type, grpc_service: call.service, grpc_method: call.method, protocol: call.protocol });
        counts.set(key, rpc);
      }
      rpc.started++;
      const watching = call.method === "WatchSessionEvents";
      if (watching) watchStreams.inc({ protocol: call.protocol });
      return new ObservedCall(rpc, watching);
    },
    delivered(receiveTime) {
      lag.observe(Math.max(0, (Date.now() - receiveTime.getTime()) / 1000));
    },
    committed(report) {
      eventsAppended.inc(report.events);
      for (const session of report.ended) {
        const seconds = ((session.endTime?.getTime() ?? session.startTime.getTime()) - session.startTime.getTime()) / 1000;
        sessionDuration.observe({ end_reason: session.endReason ?? "unknown" }, Math.max(0, seconds));
      }
    },
    swept(ended, seconds) {
      sweeperEnded.inc(ended);
      sweeperPass.observe(seconds);
    },
  };
}
