/**
 * `session-manager keys create|list|revoke`: manages API keys in the
 * database (DATABASE_URL, or the embedded PostgreSQL), applying migrations
 * first so it works before the first `serve`.
 */
import type { Config } from "../config.js";
import { ROLES, type Role } from "../auth/principal.js";
import { migrate } from "../db/migrate.js";
import pino from "pino";
import { createKey, listKeys, revokeKey } from "../service/api-keys.js";
import { openCommandDatabase } from "./database.js";
import { exitWithUsage, parseCommandOptions } from "./options.js";

const USAGE = `usage: session-manager keys create --name <name> --role <reader|writer|admin>
       session-manager keys list
       session-manager keys revoke <key id>

create   mints a key and prints its secret ONCE (smk_...) and its key id;
         only a hash of the secret is stored
list     prints every key: id, name, role, created, last used, revoked
revoke   refuses the key's calls and ends its streams on every replica
         within AUTH_CACHE_MS

roles: reader (Get, List, ListSessionEvents, Watch), writer (also every
mutation), admin (everything)
`;

const CREATE_OPTIONS = {
  name: { type: "string" },
  role: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Runs `session-manager keys`; exits 2 on bad usage, 1 when revoking an unknown key. */
export async function keysCommand(args: string[], config: Config): Promise<void> {
  const [action, ...rest] = args;
  if (action === "--help" || action === "-h" || action === "help") {
    process.stdout.write(USAGE);
    return;
  }
  if (action !== "create" && action !== "list" && action !== "revoke") exitWithUsage("expected create, list or revoke", USAGE);
  let run: (sql: Parameters<typeof listKeys>[0]) => Promise<void>;
  if (action === "create") {
    const options = parseCommandOptions(rest, CREATE_OPTIONS, USAGE);
    const name = options.name?.trim() ?? "";
    if (name === "" || name.length > 200) exitWithUsage("--name is required (1 to 200 characters)", USAGE);
    if (!ROLES.includes(options.role as Role)) exitWithUsage(`--role must be one of ${ROLES.join(", ")}`, USAGE);
    run = async (sql) => {
      const { key, token } = await createKey(sql, name, options.role as Role);
      process.stdout.write(`key id: ${key.keyId}\nrole:   ${key.role}\nsecret: ${token}\n(the secret is shown only now; store it safely)\n`);
    };
  } else if (action === "list") {
    if (rest.length > 0) exitWithUsage("list takes no arguments", USAGE);
    run = async (sql) => {
      const rows = (await listKeys(sql)).map((key) => [
        key.keyId,
        key.name,
        key.role,
        key.createTime.toISOString(),
        key.lastUseTime?.toISOString() ?? "never",
        key.revokeTime?.toISOString() ?? "-",
      ]);
      process.stdout.write(table([["KEY ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"], ...rows]));
    };
  } else {
    if (rest.length !== 1 || rest[0]!.startsWith("-")) exitWithUsage("revoke takes one key id", USAGE);
    const keyId = rest[0]!;
    run = async (sql) => {
      if (await revokeKey(sql, keyId)) process.stdout.write(`revoked ${keyId}\n`);
      else {
        process.stdout.write(`no key ${keyId}\n`);
        process.exitCode = 1;
      }
    };
  }
  const db = await openCommandDatabase(config, pino({ level: config.logLevel }, pino.destination(2)), 1);
  try {
    await migrate(db.sql);
    await run(db.sql);
  } finally {
    await db.close();
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd()).join("\n") + "\n";
}
