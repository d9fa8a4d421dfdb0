/**
 * Re-adds @bufbuild/buf's per-platform binaries to package-lock.json.
 *
 * The npm registry our machines reach lacks buf's darwin, armv7 and win32
 * packages (404), so `npm install` here leaves them out of the lockfile, and
 * `npm ci` then refuses the lockfile as out of sync with buf's
 * optionalDependencies. The entries need no tarball: npm skips optional
 * packages whose os/cpu do not match. Run after `npm install` changes the
 * lockfile: `node --import tsx scripts/complete-lockfile.ts`.
 */
import { readFileSync, writeFileSync } from "node:fs";

const PLATFORMS: Record<string, { os: string; cpu: string }> = {
  "darwin-arm64": { os: "darwin", cpu: "arm64" },
  "darwin-x64": { os: "darwin", cpu: "x64" },
  "linux-aarch64": { os: "linux", cpu: "arm64" },
  "linux-armv7": { os: "linux", cpu: "arm" },
  "linux-x64": { os: "linux", cpu: "x64" },
  "win32-arm64": { os: "win32", cpu: "arm64" },
  "win32-x64": { os: "win32", cpu: "x64" },
};

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8")) as { packages: Record<string, Record<string, unknown>> };
const buf = lock.packages["node_modules/@bufbuild/buf"];
if (!buf) throw new Error("@bufbuild/buf is not in package-lock.json");
let added = 0;
for (const [platform, { os, cpu }] of Object.entries(PLATFORMS)) {
  const key = `node_modules/@bufbuild/buf-${platform}`;
  if (lock.packages[key]) continue;
  lock.packages[key] = { version: buf.version, cpu: [cpu], dev: true, license: "Apache-2.0", optional: true, os: [os], engines: { node: ">=12" } };
  added++;
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)));
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(added === 0 ? "package-lock.json already complete" : `added ${added} @bufbuild/buf platform entries to package-lock.json`);
