/** `session-manager serve`: runs the service until SIGINT or SIGTERM (WORKERS processes; see cluster.ts). */
import cluster from "node:cluster";
import { startApp } from "../app.js";
import type { Config } from "../config.js";
import { createLogger } from "../log.js";
import { startTracing } from "../observability/tracing.js";
import { runPrimary } from "./cluster.js";

/**
 * Runs the service: with WORKERS > 1 this process becomes the cluster's
 * primary and each worker runs the code below. On SIGINT/SIGTERM (or, in a
 * worker, when its primary goes away) streams end with SERVER_SHUTTING_DOWN
 * and calls in flight get SHUTDOWN_GRACE_MS to finish.
 */
export async function serve(_args: string[], config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  if (cluster.isPrimary && config.workers > 1) return runPrimary(config, log);
  const stopTracing = await startTracing(process.env, log);
  const app = await startApp(config, log);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    await app.stop();
    await stopTracing().catch((error: unknown) => log.warn({ err: error }, "could not flush traces"));
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  if (cluster.isWorker) process.on("disconnect", () => void stop("primary exited"));
}
