/** Creates the service's pino logger: JSON lines on stdout, each with `pid` (one per WORKERS process). */
import pino, { type Logger } from "pino";

/** Creates a logger at `level` (trace ... fatal, or silent). */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: "session-manager", pid: process.pid } });
}
