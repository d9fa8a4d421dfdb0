/**
 * Reads and validates the service's configuration from environment variables.
 *
 * This is the only module that reads `process.env`. Every variable is listed
 * in `CONFIG_VARIABLES` (name, unit, default, meaning); the README's config
 * table is written from the same list.
 */

/** Describes one environment variable the service reads. */
export interface ConfigVariable {
  name: string;
  default: string;
  description: string;
}

/** Lists every environment variable, in the order the README shows them. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = [
  { name: "HOST", default: "0.0.0.0", description: "Interface to listen on." },
  { name: "PORT", default: "8080", description: "Port for gRPC, gRPC-Web and Connect (HTTP/1.1 and HTTP/2)." },
  {
    name: "DATABASE_URL",
    default: "(unset)",
    description: "PostgreSQL URL. Unset: an embedded PostgreSQL is started with its data in EMBEDDED_PG_DIR.",
  },
  { name: "EMBEDDED_PG_DIR", default: ".data/postgres", description: "Data folder of the embedded PostgreSQL (git-ignored)." },
  { name: "EMBEDDED_PG_PORT", default: "54329", description: "Port of the embedded PostgreSQL." },
  { name: "DB_POOL_MAX", default: "10", description: "Maximum pool connections per replica (plus one for LISTEN when FEED_NOTIFY is on)." },
  { name: "SESSION_T_IDLE_MS", default: "1800000", description: "Default idle timeout of a session, in milliseconds (1000 to 604800000)." },
  { name: "WATCH_HEARTBEAT_MS", default: "15000", description: "Interval of heartbeat frames on idle WatchSessionEvents streams, in milliseconds." },
  { name: "WATCH_POLL_MS", default: "250", description: "How often the replica's feed tail reader polls for new events while anyone watches (the fallback to NOTIFY), in milliseconds." },
  {
    name: "WATCH_QUEUE_FRAMES",
    default: "1000",
    description: "Frames a WatchSessionEvents stream may have queued in memory; a slower stream falls back to reading the table.",
  },
  {
    name: "FEED_NOTIFY",
    default: "on",
    description: "Wake feed readers with LISTEN/NOTIFY after commits: on, or off to poll only (still correct, slower).",
  },
  {
    name: "SWEEP_INTERVAL_MS",
    default: "5000",
    description: "Pause of this replica's idle-timeout sweeper between passes, in milliseconds; 0 turns it off (reads and writes still treat lapsed sessions as ended).",
  },
  { name: "SWEEP_BATCH_SIZE", default: "500", description: "Sessions the sweeper ends per transaction." },
  { name: "CORS_ALLOWED_ORIGINS", default: "(none)", description: "Comma-separated browser origins allowed to call the service, or `*`." },
  { name: "TLS_CERT_FILE", default: "(unset)", description: "PEM certificate; with TLS_KEY_FILE, serves TLS with ALPN (h2, http/1.1)." },
  { name: "TLS_KEY_FILE", default: "(unset)", description: "PEM private key for TLS_CERT_FILE." },
  { name: "SHUTDOWN_GRACE_MS", default: "10000", description: "How long shutdown waits for in-flight calls, in milliseconds." },
  { name: "LOG_LEVEL", default: "info", description: "pino log level: trace, debug, info, warn, error, fatal or silent." },
];

/** Holds the validated configuration. */
export interface Config {
  host: string;
  port: number;
  databaseUrl: string | null;
  embeddedPgDir: string;
  embeddedPgPort: number;
  dbPoolMax: number;
  defaultIdleTimeoutMs: number;
  watchHeartbeatMs: number;
  watchPollMs: number;
  watchQueueFrames: number;
  feedNotify: boolean;
  sweepIntervalMs: number;
  sweepBatchSize: number;
  corsAllowedOrigins: string[];
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  shutdownGraceMs: number;
  logLevel: string;
}

/** Reports every invalid variable at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/**
 * Loads the configuration from `env` (default `process.env`).
 *
 * @throws ConfigError listing every invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const text = (name: string, fallback: string): string => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? fallback : value;
  };
  const optional = (name: string): string | null => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? null : value;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = optional(name);
    if (raw === null) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };

  const logLevel = text("LOG_LEVEL", "info");
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL=${JSON.stringify(logLevel)}: expected one of ${LOG_LEVELS.join(", ")}`);
  }
  const databaseUrl = optional("DATABASE_URL");
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push("DATABASE_URL: expected a postgres:// or postgresql:// URL");
  }
  const feedNotify = text("FEED_NOTIFY", "on");
  if (feedNotify !== "on" && feedNotify !== "off") {
    problems.push(`FEED_NOTIFY=${JSON.stringify(feedNotify)}: expected on or off`);
  }
  const tlsCertFile = optional("TLS_CERT_FILE");
  const tlsKeyFile = optional("TLS_KEY_FILE");
  if ((tlsCertFile === null) !== (tlsKeyFile === null)) {
    problems.push("TLS_CERT_FILE and TLS_KEY_FILE: set both or neither");
  }
  const origins = text("CORS_ALLOWED_ORIGINS", "")
    .split(",")
    .map((origin) => origin.trim())
    .filter((origin) => origin !== "");
  for (const origin of origins) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(`CORS_ALLOWED_ORIGINS: ${JSON.stringify(origin)} is not an origin like https://app.example.com`);
    }
  }

  const config: Config = {
    host: text("HOST", "0.0.0.0"),
    port: integer("PORT", 8080, 0, 65535),
    databaseUrl,
    embeddedPgDir: text("EMBEDDED_PG_DIR", ".data/postgres"),
    embeddedPgPort: integer("EMBEDDED_PG_PORT", 54329, 1, 65535),
    dbPoolMax: integer("DB_POOL_MAX", 10, 1, 1000),
    defaultIdleTimeoutMs: integer("SESSION_T_IDLE_MS", 1_800_000, 1_000, 604_800_000),
    watchHeartbeatMs: integer("WATCH_HEARTBEAT_MS", 15_000, 100, 3_600_000),
    watchPollMs: integer("WATCH_POLL_MS", 250, 10, 60_000),
    watchQueueFrames: integer("WATCH_QUEUE_FRAMES", 1000, 1, 1_000_000),
    feedNotify: feedNotify !== "off",
    sweepIntervalMs: integer("SWEEP_INTERVAL_MS", 5_000, 0, 3_600_000),
    sweepBatchSize: integer("SWEEP_BATCH_SIZE", 500, 1, 10_000),
    corsAllowedOrigins: origins,
    tlsCertFile,
    tlsKeyFile,
    shutdownGraceMs: integer("SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    logLevel,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
