/**
 * Starts a replica from a configuration: database (embedded or not),
 * migrations, the wired service (src/wiring.ts) and the server.
 */
import { createValidateInterceptor } from "@connectrpc/validate";
import { createContractValidator } from "./transport/contract-validator.js";
import type { Logger } from "pino";
import type { Config } from "./config.js";
import { checkDatabase, openDatabase, startEmbeddedPostgres, type EmbeddedDatabase, type Sql } from "./db/database.js";
import { appliedMigration, migrate, newestMigration } from "./db/migrate.js";
import { createReadPools } from "./db/read-pools.js";
import cluster from "node:cluster";
import { AggregatorRegistry } from "prom-client";
import { createEndpoints, createMetricsServer, registryMetrics } from "./observability/endpoints.js";
import { createMetrics, type Metrics } from "./observability/metrics.js";
import type { Feed } from "./feed/watch.js";
import type { SessionService } from "./service/session-service.js";
import { createAuthenticator } from "./auth/authenticator.js";
import { createGuard } from "./auth/guard.js";
import { createLoadMonitor } from "./observability/event-loop.js";
import { createAuthInterceptor } from "./auth/interceptor.js";
import { createJwtVerifier } from "./auth/jwt.js";
import { createAccessInterceptor } from "./transport/interceptors.js";
import { createRoutes } from "./transport/routes.js";
import { createGrpcJsServer } from "./transport/grpc-js-adapter.js";
import { createServer, type Server } from "./transport/server.js";
import { createConsoleHandler } from "./transport/console.js";
import { wireService } from "./wiring.js";

/** What `startApp` returns: the running replica's parts, for `session-manager serve` and tests. */
export interface App {
  sql: Sql;
  service: SessionService;
  feed: Feed;
  server: Server;
  /** The bound port: the one the OS picked when `config.port` is 0. */
  port: number;
  /** Stops the server (streams end with UNAVAILABLE), the pool and the embedded database. */
  stop(): Promise<void>;
}

/**
 * Starts the service: opens (or starts the embedded) PostgreSQL, applies
 * migrations, and listens on `config.host:config.port`.
 */
export async function startApp(config: Config, log: Logger): Promise<App> {
  let embedded: EmbeddedDatabase | null = null;
  if (config.databaseUrl === null) {
    embedded = await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort, log });
  }
  const sql = openDatabase({ url: config.databaseUrl ?? embedded!.url, max: config.dbPoolMax });
  const applied = await migrate(sql);
  log.info({ applied }, "migrations applied");
  // Standbys (READ_DATABASE_URLS) serve the feed, and unary reads with READ_CONSISTENCY=replica.
  const reads = createReadPools({ primary: sql, urls: config.readDatabaseUrls, max: config.dbPoolMax, log });
  if (reads.hasStandbys) log.info({ standbys: config.readDatabaseUrls.length, readConsistency: config.readConsistency }, "reading from hot standbys");

  let metrics: Metrics | null = null;
  const { service, feed, sweeper, close: closeWiring } = wireService({
    ...config,
    sql,
    read: reads.read,
    log,
    onSweep: (ended, seconds) => metrics?.swept(ended, seconds),
    onCommitted: (report) => metrics?.committed(report),
  });
  metrics = config.metrics ? createMetrics({ sql, dbCacheMs: config.metricsDbCacheMs, fallbacks: () => feed.stats().overflows, standbys: reads }) : null;
  sweeper?.start();
  const isServing = () => checkDatabase(sql).then(
    () => true,
    () => false,
  );
  const shutdown = new AbortController();
  const authenticator = createAuthenticator({
    sql,
    log,
    mode: config.auth,
    jwt:
      config.jwtJwksUrl !== null || config.jwtPublicKeyFile !== null
        ? createJwtVerifier({
            jwksUrl: config.jwtJwksUrl,
            publicKeyFile: config.jwtPublicKeyFile,
            issuer: config.jwtIssuer,
            audience: config.jwtAudience,
            userClaim: config.jwtUserClaim,
          })
        : null,
    cacheMs: config.authCacheMs,
    certificateRoles: config.tlsClientRoles,
  });
  if (config.auth === "off") log.warn({ host: config.host }, "AUTH=off: every caller may do everything (loopback only)");
  const load = config.watchAdmissionDelayMs > 0 ? createLoadMonitor({ maxDelayMs: config.watchAdmissionDelayMs }) : null;
  const guard = createGuard({ sql, streamsPerPrincipal: config.watchStreamsPerPrincipal, load });
  const routes = createRoutes({ service, feed, guard, isServing, shutdown: shutdown.signal, onDelivered: metrics?.delivered });
  const interceptors = [createAccessInterceptor(log, metrics ?? undefined), createAuthInterceptor(authenticator), createValidateInterceptor({ validator: createContractValidator() })];
  const newest = newestMigration();
  const notReadyBecause = async () => {
    if (shutdown.signal.aborted) return "shutting down";
    const applied = await appliedMigration(sql).catch(() => null);
    if (applied === null) return "database unreachable";
    return applied < newest ? `database at migration ${applied}, this replica needs ${newest}` : null;
  };
  const exposed = metrics === null ? null : registryMetrics(metrics.registry);
  // A WORKERS process answers its primary, which serves every worker's metrics on METRICS_PORT (src/cli/cluster.ts).
  if (cluster.isWorker && metrics !== null) {
    AggregatorRegistry.setRegistries([metrics.registry]);
    new AggregatorRegistry(); // installs prom-client's answer to the primary's requests (its constructor does)
  }
  const endpoints = createEndpoints({ metrics: config.metricsPort === null ? exposed : null, notReadyBecause });
  const reviewConsole = createConsoleHandler({ log }); // /ui/ (web/, built on first request)
  const metricsServer = exposed !== null && config.metricsPort !== null && !cluster.isWorker ? createMetricsServer(createEndpoints({ metrics: exposed, notReadyBecause })) : null;
  const tls = config.tlsCertFile !== null;
  const server = createServer({
    routes,
    interceptors,
    grpcJs:
      config.h2cAdapter === "grpc-js" && !tls
        ? createGrpcJsServer({
            routes,
            interceptors,
            maxConcurrentStreams: config.http2MaxConcurrentStreams,
            readMaxBytes: config.maxRequestBytes,
            maxMetadataBytes: config.maxHeaderListBytes,
          })
        : null,
    maxConcurrentStreams: config.http2MaxConcurrentStreams,
    maxHeaderListBytes: config.maxHeaderListBytes,
    readMaxBytes: config.maxRequestBytes,
    corsAllowedOrigins: config.corsAllowedOrigins,
    tls:
      config.tlsCertFile && config.tlsKeyFile
        ? { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, clientCaFile: config.tlsClientCaFile }
        : null,
    headersTimeoutMs: config.headersTimeoutMs,
    plain: (req, res) => reviewConsole(req, res) || endpoints(req, res),
    connectionIdleMs: config.connectionIdleMs,
  });
  const port = await server.listen(config.port, config.host);
  if (metricsServer !== null) await new Promise<void>((resolve) => metricsServer.listen(config.metricsPort!, config.host, resolve));
  log.info({ port, host: config.host, tls: config.tlsCertFile !== null }, "listening");

  return {
    sql,
    service,
    feed,
    server,
    port,
    async stop() {
      shutdown.abort();
      authenticator.close();
      load?.close();
      const wiringClosed = closeWiring();
      metricsServer?.close();
      await server.close(config.shutdownGraceMs);
      await wiringClosed;
      await reads.close();
      await sql.end({ timeout: 5 });
      await embedded?.stop();
    },
  };
}
