/**
 * Starts a replica from a configuration: database (embedded or not),
 * migrations, the wired service (src/wiring.ts) and the server.
 */
import { createValidateInterceptor } from "@connectrpc/validate";
import type { Logger } from "pino";
import type { Config } from "./config.js";
import { checkDatabase, openDatabase, startEmbeddedPostgres, type EmbeddedDatabase, type Sql } from "./db/database.js";
import { migrate } from "./db/migrate.js";
import type { Feed } from "./feed/watch.js";
import type { SessionService } from "./service/session-service.js";
import { createAccessInterceptor } from "./transport/interceptors.js";
import { createRoutes } from "./transport/routes.js";
import { createGrpcJsServer } from "./transport/grpc-js-adapter.js";
import { createServer, type Server } from "./transport/server.js";
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

  const { service, feed, sweeper, close: closeWiring } = wireService({ ...config, sql, log });
  sweeper?.start();
  const isServing = () => checkDatabase(sql).then(
    () => true,
    () => false,
  );
  const shutdown = new AbortController();
  const routes = createRoutes({ service, feed, isServing, shutdown: shutdown.signal });
  const interceptors = [createAccessInterceptor(log), createValidateInterceptor()];
  const tls = config.tlsCertFile !== null;
  const server = createServer({
    routes,
    interceptors,
    grpcJs:
      config.h2cAdapter === "grpc-js" && !tls
        ? createGrpcJsServer({ routes, interceptors, maxConcurrentStreams: config.http2MaxConcurrentStreams })
        : null,
    maxConcurrentStreams: config.http2MaxConcurrentStreams,
    corsAllowedOrigins: config.corsAllowedOrigins,
    tls: config.tlsCertFile && config.tlsKeyFile ? { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile } : null,
    headersTimeoutMs: config.headersTimeoutMs,
    connectionIdleMs: config.connectionIdleMs,
  });
  const port = await server.listen(config.port, config.host);
  log.info({ port, host: config.host, tls: config.tlsCertFile !== null }, "listening");

  return {
    sql,
    service,
    feed,
    server,
    port,
    async stop() {
      shutdown.abort();
      const wiringClosed = closeWiring();
      await server.close(config.shutdownGraceMs);
      await wiringClosed;
      await sql.end({ timeout: 5 });
      await embedded?.stop();
    },
  };
}
