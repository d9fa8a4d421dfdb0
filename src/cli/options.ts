/**
 * Parses a command's options with node:util parseArgs (strict), turning
 * every mistake into a usage error: the message and the command's usage on
 * stderr, exit status 2.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** Exits with status 2 after printing `message` and the command's usage to stderr. */
export function exitWithUsage(message: string, usage: string): never {
  process.stderr.write(`session-manager: ${message}\n\n${usage}`);
  process.exit(2);
}

/**
 * Parses `args` strictly: unknown options, missing values and positionals
 * are usage errors (exit 2). A `help` option, when given, prints the usage
 * to stdout and exits 0.
 */
export function parseCommandOptions<T extends ParseArgsOptionsConfig>(args: string[], options: T, usage: string) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (error) {
    exitWithUsage(error instanceof Error ? error.message : String(error), usage);
  }
  if ((parsed.values as Record<string, unknown>).help === true) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return parsed.values;
}
