/**
 * Reproduces a defect the chaos harness found (seed 2, fault
 * partition-replica-postgres): when the route to PostgreSQL is a blackhole
 * (connect fails with EINVAL) or missing (ENETUNREACH), src/db/errors.ts
 * does not classify the driver's error as "database unavailable", so every
 * RPC answers INTERNAL "internal error" (logged at error level) instead of
 * UNAVAILABLE / DATABASE_UNAVAILABLE, and clients do not retry.
 *
 * Run as root: `node --import tsx chaos/repro/database-unreachable.ts`. It
 * creates a network namespace (smchaos-repro) with only loopback and a
 * blackhole route to 10.213.250.1, connects postgres.js (openDatabase) from
 * inside it to that address and to 10.213.251.1 (no route at all), and
 * prints what toDomainError makes of each error. Exit 1 while the defect
 * is there. No PostgreSQL is needed: the connection fails before any packet
 * leaves.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { openDatabase } from "../../src/db/database.js";
import { isDatabaseUnavailable } from "../../src/db/errors.js";

const NAMESPACE = "smchaos-repro";
const cases = [
  { route: "blackhole route", url: "postgres://postgres:postgres@10.213.250.1:5432/x" },
  { route: "no route", url: "postgres://postgres:postgres@10.213.251.1:5432/x" },
];

if (process.argv[2] !== "inside") {
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "inherit" });
  try {
    execFileSync("ip", ["netns", "delete", NAMESPACE], { stdio: "ignore" });
  } catch {
    // none left over
  }
  ip("netns", "add", NAMESPACE);
  let status = 0;
  try {
    ip("-n", NAMESPACE, "link", "set", "lo", "up");
    ip("-n", NAMESPACE, "route", "add", "blackhole", "10.213.250.1/32");
    execFileSync("ip", ["netns", "exec", NAMESPACE, process.execPath, "--import", "tsx", fileURLToPath(import.meta.url), "inside"], { stdio: "inherit" });
  } catch {
    status = 1;
  } finally {
    ip("netns", "delete", NAMESPACE);
  }
  process.exit(status);
}

let misclassified = 0;
for (const { route, url } of cases) {
  const sql = openDatabase({ url, max: 1 });
  try {
    await sql`select 1`;
    console.log(`${route}: connected?!`);
  } catch (error) {
    const { code, syscall } = error as { code?: string; syscall?: string };
    const unavailable = isDatabaseUnavailable(error);
    if (!unavailable) misclassified += 1;
    console.log(`${route}: ${syscall ?? ""} ${code}: isDatabaseUnavailable = ${unavailable}${unavailable ? "" : " (so the RPC answers INTERNAL, not UNAVAILABLE)"}`);
  } finally {
    await sql.end({ timeout: 1 });
  }
}
process.exit(misclassified === 0 ? 0 : 1);
