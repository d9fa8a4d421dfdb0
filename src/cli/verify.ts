/**
 * `session-manager verify`: parses the options, runs the audit use case
 * (src/service/audit.ts: recomputes the hash chains of a session, a user or
 * every session) and reports the first broken link. Exit status: 0 when
 * every chain holds, 1 when one is broken, 2 on bad options.
 */
import pino from "pino";
import type { Config } from "../config.js";
import type { AuditScope } from "../db/audit-repository.js";
import { verifyChains } from "../service/audit.js";
import { openCommandDatabase } from "./database.js";
import { exitWithUsage, parseCommandOptions } from "./options.js";

const USAGE = `usage: session-manager verify (--session <id> | --user <id> | --all)

Recomputes each session's event hash chain and reports the first broken link
(DATABASE_URL, or the embedded PostgreSQL when it is unset).

options:
  --session <id>   one session
  --user <id>      every session of one user
  --all            every session
  -h, --help       show this help
`;

const OPTIONS = {
  session: { type: "string" },
  user: { type: "string" },
  all: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Runs `session-manager verify`; sets exit status 1 if a chain is broken or the session does not exist. */
export async function verifyCommand(args: string[], config: Config): Promise<void> {
  const options = parseCommandOptions(args, OPTIONS, USAGE);
  const chosen = [options.session !== undefined, options.user !== undefined, options.all === true].filter(Boolean).length;
  if (chosen !== 1) exitWithUsage("choose exactly one of --session, --user, --all", USAGE);
  const scope: AuditScope = { sessionId: options.session ?? null, userId: options.user ?? null };
  const db = await openCommandDatabase(config, pino({ level: config.logLevel }, pino.destination(2)));
  try {
    const report = await verifyChains(db.sql, scope);
    if (report.sessions === 0 && scope.sessionId !== null) {
      process.stdout.write(`no session ${scope.sessionId}\n`);
      process.exitCode = 1;
    } else if (report.broken === null) {
      process.stdout.write(`verified ${report.sessions} sessions, ${report.events} events: every chain holds\n`);
    } else {
      const { sessionId, seq, problem } = report.broken;
      process.stdout.write(`BROKEN: session ${sessionId} at seq ${seq}: ${problem} (after checking ${report.sessions} sessions)\n`);
      process.exitCode = 1;
    }
  } finally {
    await db.close();
  }
}
