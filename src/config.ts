/**
 * Reads and validates the service's configuration from environment variables.
 *
 * This is the only module that reads `process.env`. One table, `VARIABLES`,
 * gives each variable's name, default, parser and meaning: `loadConfig` parses
 * with it and the README's config table (`CONFIG_VARIABLES`) is written from it,
 * so a default is stated once.
 */
import { availableParallelism } from "node:os";
import { DEFAULT_WRITE_BATCH_MAX, DEFAULT_WRITE_BATCH_WAIT_US, DEFAULT_WRITE_BATCHES_IN_FLIGHT } from "./service/write-batch.js";

/** Holds the validated configuration. */
export interface Config {
  host: string;
  port: number;
  databaseUrl: string | null;
  embeddedPgDir: string;
  embeddedPgPort: number;
  dbPoolMax: number;
  /** Hot standby URLs (READ_DATABASE_URLS); empty: every read goes to the primary. */
  readDatabaseUrls: string[];
  readConsistency: "primary" | "replica";
  readReplayWaitMs: number;
  writeBatchMax: number;
  writeBatchWaitUs: number;
  writeBatchesInFlight: number;
  defaultIdleTimeoutMs: number;
  watchHeartbeatMs: number;
  watchPollMs: number;
  watchQueueFrames: number;
  watchStreamsMax: number;
  /** p99 event-loop delay above which new Watch streams are refused, in ms; 0 turns load admission off. */
  watchAdmissionDelayMs: number;
  feedNotify: boolean;
  sweepIntervalMs: number;
  sweepBatchSize: number;
  corsAllowedOrigins: string[];
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  h2cAdapter: "grpc-js" | "connect";
  http2MaxConcurrentStreams: number;
  headersTimeoutMs: number;
  connectionIdleMs: number;
  shutdownGraceMs: number;
  workers: number;
  logLevel: string;
  auth: "required" | "off";
  authCacheMs: number;
  jwtJwksUrl: string | null;
  jwtPublicKeyFile: string | null;
  jwtIssuer: string | null;
  jwtAudience: string | null;
  jwtUserClaim: string;
  watchStreamsPerPrincipal: number;
  tlsClientCaFile: string | null;
  /** Client certificate name (CN or SAN) to role. */
  tlsClientRoles: Map<string, "reader" | "writer" | "admin">;
  maxRequestBytes: number;
  maxHeaderListBytes: number;
  metrics: boolean;
  metricsPort: number | null;
  metricsDbCacheMs: number;
}

/** Describes one environment variable as the README's config table shows it. */
export interface ConfigVariable {
  name: string;
  /** The default as the README shows it, e.g. "8080" or "(unset)". */
  default: string;
  description: string;
}

/**
 * Parses one variable's raw text (undefined when unset or blank) into its
 * value, or returns `{ problem }` describing what was expected.
 */
type Parser<T> = (raw: string | undefined) => T | { problem: string };

interface Variable<K extends keyof Config> {
  name: string;
  key: K;
  /** The default as the README shows it. */
  shown: string;
  parse: Parser<Config[K]>;
  description: string;
  /** True when the raw value may hold a password: a problem then names the variable without echoing it. */
  secret?: boolean;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

function isProblem(value: unknown): value is { problem: string } {
  return typeof value === "object" && value !== null && "problem" in value;
}

/** An integer from `min` to `max`, `fallback` when unset; shown as its decimal default. */
function integer<K extends keyof Config>(
  name: string,
  key: K,
  fallback: number,
  [min, max]: [number, number],
  description: string,
): Variable<K> {
  const parse = (raw: string | undefined) => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) return { problem: `expected an integer from ${min} to ${max}` };
    return value;
  };
  return { name, key, shown: String(fallback), parse: parse as Parser<Config[K]>, description };
}

/** Free text, `fallback` when unset (null for "(unset)"). */
function text<K extends keyof Config>(name: string, key: K, fallback: string | null, description: string, check?: (value: string) => string | null): Variable<K> {
  const parse = (raw: string | undefined) => {
    if (raw === undefined) return fallback;
    const problem = check?.(raw) ?? null;
    return problem === null ? raw : { problem };
  };
  return { name, key, shown: fallback ?? "(unset)", parse: parse as Parser<Config[K]>, description };
}

function originsOf(raw: string | undefined): string[] | { problem: string } {
  const origins = (raw ?? "").split(",").map((origin) => origin.trim()).filter((origin) => origin !== "");
  const bad = origins.find((origin) => origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin));
  return bad === undefined ? origins : { problem: `${JSON.stringify(bad)} is not an origin like https://app.example.com` };
}

function certificateRoles(raw: string | undefined): Config["tlsClientRoles"] | { problem: string } {
  const roles: Config["tlsClientRoles"] = new Map();
  for (const entry of (raw ?? "").split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    const match = /^([^=\s]+)=(reader|writer|admin)$/.exec(entry);
    if (match === null) return { problem: `${JSON.stringify(entry)} is not name=role (role: reader, writer or admin)` };
    roles.set(match[1]!, match[2] as "reader" | "writer" | "admin");
  }
  return roles;
}

/** Tells whether a HOST value only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function databaseUrls(raw: string | undefined): string[] | { problem: string } {
  const urls = (raw ?? "").split(",").map((url) => url.trim()).filter((url) => url !== "");
  const bad = urls.find((url) => !/^postgres(ql)?:\/\//.test(url));
  if (bad !== undefined) return { problem: `expected comma-separated postgres:// or postgresql:// URLs (entry ${urls.indexOf(bad) + 1} is not one)` };
  return new Set(urls).size === urls.length ? urls : { problem: "the same standby is listed twice" };
}

function onOff(raw: string | undefined): boolean | { problem: string } {
  if (raw === undefined || raw === "on") return true;
  return raw === "off" ? false : { problem: "expected on or off" };
}

const VARIABLES: readonly Variable<keyof Config>[] = [
  text("HOST", "host", "0.0.0.0", "Interface to listen on."),
  integer("PORT", "port", 8080, [0, 65535], "Port for gRPC, gRPC-Web and Connect (HTTP/1.1 and HTTP/2)."),
  {
    // secret: a URL may hold a password, which a problem report (stderr, logs) must not show.
    ...text(
      "DATABASE_URL",
      "databaseUrl",
      null,
      "PostgreSQL URL. Unset: an embedded PostgreSQL is started with its data in EMBEDDED_PG_DIR.",
      (url) => (/^postgres(ql)?:\/\//.test(url) ? null : "expected a postgres:// or postgresql:// URL"),
    ),
    secret: true,
  },
  text("EMBEDDED_PG_DIR", "embeddedPgDir", ".data/postgres", "Data folder of the embedded PostgreSQL (git-ignored)."),
  integer("EMBEDDED_PG_PORT", "embeddedPgPort", 54329, [1, 65535], "Port of the embedded PostgreSQL."),
  integer("DB_POOL_MAX", "dbPoolMax", 10, [1, 1000], "Maximum pool connections per replica (plus one for LISTEN when FEED_NOTIFY is on)."),
  {
    name: "READ_DATABASE_URLS",
    key: "readDatabaseUrls",
    shown: "(none)",
    parse: databaseUrls,
    secret: true,
    description:
      "Comma-separated PostgreSQL hot standby URLs of DATABASE_URL's primary. WatchSessionEvents (tail reader and catch-up) and export read from the first healthy one (then the next, then the primary); writes, idempotency lookups and the sweeper stay on the primary. None: every read goes to the primary.",
  },
  text(
    "READ_CONSISTENCY",
    "readConsistency",
    "primary",
    "Where GetSession, ListSessions and ListSessionEvents read: primary (read-your-writes) or replica (a standby from READ_DATABASE_URLS; may lag behind a write just answered).",
    (value) => (value === "primary" || value === "replica" ? null : "expected primary or replica"),
  ),
  integer(
    "READ_REPLAY_WAIT_MS",
    "readReplayWaitMs",
    5_000,
    [0, 600_000],
    "How long a WatchSessionEvents call waits for the feed's horizon to reach its after_cursor (a fresh write's cursor that the standby has not replayed yet, or that an older open transaction holds back) before answering INVALID_CURSOR, in milliseconds.",
  ),
  integer(
    "WRITE_BATCH_MAX",
    "writeBatchMax",
    DEFAULT_WRITE_BATCH_MAX,
    [1, 1000],
    "Group commit: most StartSession, EndSession, AppendSessionEvent and HeartbeatSession calls one transaction carries (each keeps its own answer and errors); 1 gives every call its own transaction.",
  ),
  integer(
    "WRITE_BATCH_WAIT_US",
    "writeBatchWaitUs",
    DEFAULT_WRITE_BATCH_WAIT_US,
    [0, 100_000],
    "Group commit: how long a call waits for others to share its transaction, in microseconds (timers count whole milliseconds: 1 to 999 wait about 1 ms); 0 takes the calls that arrived together, without a timer.",
  ),
  integer(
    "WRITE_BATCHES_IN_FLIGHT",
    "writeBatchesInFlight",
    DEFAULT_WRITE_BATCHES_IN_FLIGHT,
    [1, 1000],
    "Group commit: transactions of batched calls running at once per replica (each holds a pool connection); calls arriving meanwhile join the next batch.",
  ),
  integer(
    "SESSION_T_IDLE_MS",
    "defaultIdleTimeoutMs",
    1_800_000,
    [1_000, 604_800_000],
    "Default idle timeout of a session, in milliseconds (1000 to 604800000).",
  ),
  integer("WATCH_HEARTBEAT_MS", "watchHeartbeatMs", 15_000, [100, 3_600_000], "Interval of heartbeat frames on idle WatchSessionEvents streams, in milliseconds."),
  integer(
    "WATCH_POLL_MS",
    "watchPollMs",
    250,
    [10, 60_000],
    "How often the replica's feed tail reader polls for new events while anyone watches (the fallback to NOTIFY), in milliseconds.",
  ),
  integer(
    "WATCH_QUEUE_FRAMES",
    "watchQueueFrames",
    1000,
    [1, 1_000_000],
    "Frames a WatchSessionEvents stream may have queued in memory; a slower stream falls back to reading the table.",
  ),
  integer(
    "WATCH_STREAMS_MAX",
    "watchStreamsMax",
    20_000,
    [1, 1_000_000],
    "WatchSessionEvents streams one replica serves at once; more are refused with RESOURCE_EXHAUSTED / TOO_MANY_STREAMS (writes are never refused for watching).",
  ),
  integer(
    "WATCH_ADMISSION_DELAY_MS",
    "watchAdmissionDelayMs",
    200,
    [0, 60_000],
    "Load admission: while the replica's event-loop delay (p99 over the last second) exceeds this, in milliseconds, new WatchSessionEvents streams are refused with RESOURCE_EXHAUSTED / TOO_MANY_STREAMS (scope load) and writes keep being served; 0 turns it off.",
  ),
  {
    name: "FEED_NOTIFY",
    key: "feedNotify",
    shown: "on",
    parse: onOff,
    description: "Wake feed readers with LISTEN/NOTIFY after commits: on, or off to poll only (still correct, slower).",
  },
  integer(
    "SWEEP_INTERVAL_MS",
    "sweepIntervalMs",
    5_000,
    [0, 3_600_000],
    "Pause of this replica's idle-timeout sweeper between passes, in milliseconds; 0 turns it off (reads and writes still treat lapsed sessions as ended).",
  ),
  integer("SWEEP_BATCH_SIZE", "sweepBatchSize", 500, [1, 10_000], "Sessions the sweeper ends per transaction."),
  {
    name: "CORS_ALLOWED_ORIGINS",
    key: "corsAllowedOrigins",
    shown: "(none)",
    parse: originsOf,
    description: "Comma-separated browser origins allowed to call the service, or `*`.",
  },
  text("TLS_CERT_FILE", "tlsCertFile", null, "PEM certificate; with TLS_KEY_FILE, serves TLS with ALPN (h2, http/1.1)."),
  text("TLS_KEY_FILE", "tlsKeyFile", null, "PEM private key for TLS_CERT_FILE."),
  text(
    "H2C_ADAPTER",
    "h2cAdapter",
    "grpc-js",
    "Server for cleartext HTTP/2 connections: grpc-js (gRPC only, the fast path; Connect and gRPC-Web clients use HTTP/1.1 or TLS) or connect (connect-node: gRPC, gRPC-Web and Connect over h2c, slower).",
    (value) => (value === "grpc-js" || value === "connect" ? null : "expected grpc-js or connect"),
  ),
  integer(
    "HTTP2_MAX_CONCURRENT_STREAMS",
    "http2MaxConcurrentStreams",
    1000,
    [1, 100_000],
    "Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS), on every HTTP/2 server.",
  ),
  integer(
    "HEADERS_TIMEOUT_MS",
    "headersTimeoutMs",
    10_000,
    [100, 600_000],
    "Time a connection has to send its first bytes and then complete request headers (HTTP/2: open a stream; HTTP/1.1: the header block), in milliseconds; slower connections are closed.",
  ),
  integer(
    "CONNECTION_IDLE_MS",
    "connectionIdleMs",
    300_000,
    [1_000, 86_400_000],
    "An HTTP/2 connection with no open stream for this long is closed with GOAWAY (clients reconnect on their next call), in milliseconds. Open streams, Watch streams included, keep it open.",
  ),
  integer("SHUTDOWN_GRACE_MS", "shutdownGraceMs", 10_000, [0, 600_000], "How long shutdown waits for in-flight calls, in milliseconds."),
  {
    name: "WORKERS",
    key: "workers",
    shown: "(cores)",
    parse: (raw) => {
      if (raw === undefined) return availableParallelism();
      const value = Number(raw);
      return /^\d+$/.test(raw) && value >= 1 && value <= 256 ? value : { problem: "expected an integer from 1 to 256" };
    },
    description:
      "Server processes `serve` runs on the port (node:cluster), each a full replica; default the number of cores. 1 runs the service in the one process.",
  },
  text(
    "AUTH",
    "auth",
    "required",
    "required: every RPC but health and reflection needs a credential (README, Credentials); off: no checks, accepted only when HOST is a loopback address.",
    (value) => (value === "required" || value === "off" ? null : "expected required or off"),
  ),
  integer(
    "AUTH_CACHE_MS",
    "authCacheMs",
    2_000,
    [100, 5_000],
    "How long a replica trusts an API key it read from the database, and how often it checks its accepted keys for revocation, in milliseconds.",
  ),
  text("JWT_JWKS_URL", "jwtJwksUrl", null, "URL of the identity provider's JWKS; JWTs signed by its keys are accepted (fetched and cached).", (url) =>
    /^https?:\/\//.test(url) ? null : "expected an http:// or https:// URL",
  ),
  text("JWT_PUBLIC_KEY_FILE", "jwtPublicKeyFile", null, "PEM public key or JWKS JSON file to verify JWTs with, instead of JWT_JWKS_URL."),
  text("JWT_ISSUER", "jwtIssuer", null, "Required `iss` of JWTs (unset: not checked)."),
  text("JWT_AUDIENCE", "jwtAudience", null, "Required `aud` of JWTs (unset: not checked)."),
  text("JWT_USER_CLAIM", "jwtUserClaim", "sub", "JWT claim that holds the caller's user_id; such a caller only reaches that user's sessions and events."),
  integer(
    "WATCH_STREAMS_PER_PRINCIPAL",
    "watchStreamsPerPrincipal",
    100,
    [1, 1_000_000],
    "WatchSessionEvents streams one credential may hold open on one replica; more get RESOURCE_EXHAUSTED / TOO_MANY_STREAMS.",
  ),
  text(
    "TLS_CLIENT_CA_FILE",
    "tlsClientCaFile",
    null,
    "PEM CA bundle; with TLS, clients may present a certificate it signed, and TLS_CLIENT_ROLES gives its name a role.",
  ),
  {
    name: "TLS_CLIENT_ROLES",
    key: "tlsClientRoles",
    shown: "(none)",
    parse: certificateRoles,
    description: "Comma-separated `name=role` of client certificates (subject CN or a SAN DNS/URI name), e.g. `worker-a=writer`.",
  },
  integer("MAX_REQUEST_BYTES", "maxRequestBytes", 1_048_576, [1_024, 67_108_864], "Largest request message accepted, in bytes; larger get RESOURCE_EXHAUSTED."),
  integer(
    "MAX_HEADER_LIST_BYTES",
    "maxHeaderListBytes",
    16_384,
    [1_024, 1_048_576],
    "Largest header block (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE, HTTP/1.1 header size) accepted, in bytes; larger requests are refused by the HTTP layer.",
  ),
  {
    name: "METRICS",
    key: "metrics",
    shown: "on",
    parse: onOff,
    description: "Collect and serve Prometheus metrics (README, Metrics and probes): on, or off (no /metrics; for measuring what they cost).",
  },
  {
    name: "METRICS_PORT",
    key: "metricsPort",
    shown: "(unset)",
    parse: (raw) => {
      if (raw === undefined) return null;
      const value = Number(raw);
      return /^\d+$/.test(raw) && value >= 1 && value <= 65535 ? value : { problem: "expected a port from 1 to 65535" };
    },
    description:
      "Serves GET /metrics on this port (HTTP/1.1, HOST) instead of the service port, to keep it off the public listener; with WORKERS > 1 the primary serves every worker's metrics there, summed.",
  },
  integer(
    "METRICS_DB_CACHE_MS",
    "metricsDbCacheMs",
    5_000,
    [0, 3_600_000],
    "How long the metrics read from the database (sessions by state, lapsed sessions pending, horizon age) are reused, in milliseconds: N scrapes in that time cost one query.",
  ),
  text("LOG_LEVEL", "logLevel", "info", "pino log level: trace, debug, info, warn, error, fatal or silent.", (level) =>
    LOG_LEVELS.includes(level) ? null : `expected one of ${LOG_LEVELS.join(", ")}`,
  ),
];

/** Lists every environment variable, in the order the README shows them. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = VARIABLES.map(({ name, shown, description }) => ({
  name,
  default: shown,
  description,
}));

/** Reports every invalid variable at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/**
 * Loads the configuration from `env` (default `process.env`). Values are
 * trimmed; blank counts as unset.
 *
 * @throws ConfigError listing every invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const config: Record<string, unknown> = {};
  for (const variable of VARIABLES) {
    const raw = env[variable.name]?.trim();
    const value = variable.parse(raw === "" ? undefined : raw);
    if (isProblem(value)) {
      problems.push(`${variable.name}=${variable.secret ? "(value hidden)" : JSON.stringify(raw)}: ${value.problem}`);
      config[variable.key] = variable.parse(undefined);
    } else {
      config[variable.key] = value;
    }
  }
  if ((config.tlsCertFile === null) !== (config.tlsKeyFile === null)) {
    problems.push("TLS_CERT_FILE and TLS_KEY_FILE: set both or neither");
  }
  if (config.auth === "off" && !isLoopbackHost(config.host as string)) {
    problems.push(`AUTH=off: only allowed when HOST is a loopback address (127.0.0.1, ::1, localhost), not ${JSON.stringify(config.host)}: a server other hosts can reach never runs without credentials`);
  }
  if (config.jwtJwksUrl !== null && config.jwtPublicKeyFile !== null) problems.push("JWT_JWKS_URL and JWT_PUBLIC_KEY_FILE: set one or neither");
  if (config.tlsClientCaFile !== null && config.tlsCertFile === null) problems.push("TLS_CLIENT_CA_FILE: needs TLS (TLS_CERT_FILE and TLS_KEY_FILE)");
  if ((config.tlsClientRoles as Map<string, string>).size > 0 && config.tlsClientCaFile === null) problems.push("TLS_CLIENT_ROLES: needs TLS_CLIENT_CA_FILE");
  if (problems.length > 0) throw new ConfigError(problems);
  return config as unknown as Config;
}
