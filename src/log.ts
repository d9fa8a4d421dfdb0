/** Creates the service's pino logger: JSON lines on stdout, each with `pid` (one per WORKERS process). */
import pino, { type Logger } from "pino";
import { activeSpanLogFields } from "./observability/tracing.js";

/** Creates a logger at `level` (trace ... fatal, or silent); lines written inside a traced RPC carry `trace_id` and `span_id`. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: "session-manager", pid: process.pid }, mixin: activeSpanLogFields });
}
