/**
 * The `session-manager` command line. Each command lives in its own file and
 * is registered in COMMANDS; configuration comes from the environment
 * (see src/config.ts), options from the command's own arguments.
 */
import { ConfigError, loadConfig, type Config } from "../config.js";
import { exportCommand } from "./export.js";
import { keysCommand } from "./keys.js";
import { migrateCommand } from "./migrate.js";
import { pruneCommand } from "./prune.js";
import { serve } from "./serve.js";
import { tail } from "./tail.js";
import { verifyCommand } from "./verify.js";

/** A subcommand: `summary` is its line in the usage text; `run` gets the arguments after its name. */
interface Command {
  summary: string;
  run(args: string[], config: Config): Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  serve: { summary: "run the service (configured by environment variables; see README)", run: serve },
  migrate: { summary: "apply database migrations and exit", run: migrateCommand },
  tail: { summary: "follow the live event feed through the RPC, as JSON lines", run: tail },
  export: { summary: "write events from the database as CloudEvents JSON lines", run: exportCommand },
  verify: { summary: "recompute the event hash chains and report the first broken link", run: verifyCommand },
  keys: { summary: "create, list or revoke API keys (the secret is printed once)", run: keysCommand },
  prune: { summary: "archive, then remove whole sessions that ended before a time", run: pruneCommand },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(10)}${command.summary}`);
  return `usage: session-manager <command> [options]\n\ncommands:\n${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  const command = name === undefined ? undefined : COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(usage());
    process.exit(name === undefined || name === "help" || name === "--help" ? 0 : 2);
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  await command.run(args, config);
}

await main(process.argv.slice(2));
