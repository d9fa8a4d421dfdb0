/**
 * `serve` with WORKERS > 1: node:cluster runs that many worker processes, each
 * a full replica (its own pool, feed, tail reader and sweeper) on the one
 * shared port, so one host uses every core without one container per core.
 * Nothing in a worker decides correctness for another: they coordinate
 * through PostgreSQL exactly as separate replicas do.
 *
 * The primary serves no calls. It starts the embedded PostgreSQL when no
 * DATABASE_URL is set (workers get its URL), restarts a worker that dies,
 * and on SIGINT/SIGTERM stops every worker gracefully (each ends its streams
 * with SERVER_SHUTTING_DOWN and drains its calls for SHUTDOWN_GRACE_MS), then
 * the database. A worker whose primary disappears stops by itself.
 */
import cluster, { type Worker } from "node:cluster";
import { once } from "node:events";
import type { Logger } from "pino";
import { AggregatorRegistry } from "prom-client";
import { createEndpoints, createMetricsServer } from "../observability/endpoints.js";
import type { Config } from "../config.js";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../db/database.js";

/** How long after the grace period a worker that has not exited is killed, in ms. */
const KILL_AFTER_GRACE_MS = 5_000;
/** Pause before a worker that died is started again, in ms. */
const RESTART_DELAY_MS = 1_000;

/** Runs the cluster's primary until SIGINT or SIGTERM; see the module comment. */
export async function runPrimary(config: Config, log: Logger): Promise<void> {
  let embedded: EmbeddedDatabase | null = null;
  if (config.databaseUrl === null) {
    embedded = await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort, log });
  }
  const env = { DATABASE_URL: config.databaseUrl ?? embedded!.url, WORKERS: "1" };
  let stopping = false;

  const fork = (): Worker => {
    const worker = cluster.fork(env);
    worker.once("exit", (code, signal) => {
      if (stopping) return;
      log.error({ workerPid: worker.process.pid, code, signal }, "worker exited; starting another");
      setTimeout(() => !stopping && fork(), RESTART_DELAY_MS).unref();
    });
    return worker;
  };
  for (let i = 0; i < config.workers; i++) fork();
  // METRICS_PORT: the primary asks every worker for its registry and serves the sum (prom-client's cluster aggregation).
  const aggregator = new AggregatorRegistry();
  const metricsServer =
    config.metricsPort === null || !config.metrics
      ? null
      : createMetricsServer(
          createEndpoints({
            metrics: { contentType: aggregator.contentType, text: () => aggregator.clusterMetrics() },
            notReadyBecause: async () => (stopping ? "shutting down" : null),
          }),
        ).listen(config.metricsPort, config.host);
  log.info({ workers: config.workers, pid: process.pid }, "cluster primary started");

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    metricsServer?.close();
    log.info({ signal }, "stopping workers");
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
    const killer = setTimeout(() => workers.forEach((worker) => worker.process.kill("SIGKILL")), config.shutdownGraceMs + KILL_AFTER_GRACE_MS);
    await Promise.all(
      workers.map(async (worker) => {
        if (worker.isDead()) return;
        const exited = once(worker, "exit");
        worker.process.kill("SIGTERM");
        await exited;
      }),
    );
    clearTimeout(killer);
    await embedded?.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}
