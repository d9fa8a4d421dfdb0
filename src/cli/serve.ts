/** `session-manager serve`: runs the service until SIGINT or SIGTERM. */
import { startApp } from "../app.js";
import type { Config } from "../config.js";
import { createLogger } from "../log.js";

/** Runs the service; on SIGINT/SIGTERM, ends streams with UNAVAILABLE and stops gracefully. */
export async function serve(_args: string[], config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  const app = await startApp(config, log);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    await app.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}
