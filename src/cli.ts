/**
 * The `session-manager` command line: `serve` runs the service, `migrate`
 * applies migrations and exits.
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { openDatabase, startEmbeddedPostgres } from "./db/database.js";
import { migrate } from "./db/migrate.js";
import { startApp } from "./app.js";
import { createLogger } from "./log.js";

const USAGE = `usage: session-manager <command>

commands:
  serve     run the service (config from environment variables; see README)
  migrate   apply database migrations and exit
`;

async function serve(config: Config): Promise<void> {
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

async function migrateOnly(config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  const embedded = config.databaseUrl === null
    ? await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort, log })
    : null;
  const sql = openDatabase({ url: config.databaseUrl ?? embedded!.url, max: 1 });
  const applied = await migrate(sql);
  process.stdout.write(applied.length === 0 ? "database is up to date\n" : `applied migrations: ${applied.join(", ")}\n`);
  await sql.end();
  await embedded?.stop();
}

async function main(argv: string[]): Promise<void> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, strict: false });
  const command = positionals[0];
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  switch (command) {
    case "serve":
      return serve(config);
    case "migrate":
      return migrateOnly(config);
    default:
      process.stderr.write(USAGE);
      process.exit(command === undefined || command === "help" ? 0 : 2);
  }
}

await main(process.argv.slice(2));
