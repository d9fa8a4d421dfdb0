/**
 * Runs the README's client examples as a user would copy them: the
 * TypeScript SDK example (section "Clients", "TypeScript") in its own Node
 * process with tsx, importing `session-manager/client` through the
 * package's exports, against a real server with credentials required. The
 * Python example must equal clients/python/example_worker.py, which the
 * Python client test runs.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../src/app.js";
import { startTestApp } from "./support/app.js";
import { mintKey } from "./support/credentials.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const run = promisify(execFile);

/** Returns the first fenced block of `language` after `heading`. */
function exampleAfter(heading: string, language: string): string {
  const start = readme.indexOf(heading);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const match = new RegExp("```" + language + "\\n([\\s\\S]*?)\\n```").exec(readme.slice(start));
  expect(match, `a ${language} block after ${heading}`).not.toBeNull();
  return match![1]!;
}

let app: App;

beforeAll(async () => {
  app = await startTestApp({ auth: "required" });
});
afterAll(async () => {
  await app?.stop();
});

describe("README examples", () => {
  it("runs the TypeScript client example: two sessions written, then watched until an end", async () => {
    // The example lives in the repository so `session-manager/client` resolves through package.json's exports.
    mkdirSync(join(ROOT, ".data"), { recursive: true });
    const dir = mkdtempSync(join(ROOT, ".data", "readme-example-"));
    const file = join(dir, "example.ts");
    writeFileSync(file, exampleAfter("### TypeScript", "ts"));
    const { token } = await mintKey(app.sql, "writer");
    const { stdout } = await run(`${ROOT}node_modules/.bin/node`, ["--import", "tsx", file], {
      cwd: ROOT,
      env: { ...process.env, SM_URL: `http://127.0.0.1:${app.port}`, SM_KEY: token },
      timeout: 60_000,
    }).finally(() => rmSync(dir, { recursive: true, force: true }));
    const lines = stdout.trim().split("\n");
    expect(lines).toContain("ended by this handle: true");
    expect(lines.some((line) => /^\d+ care\.input\.received \{ text: 'hello' \}$/.test(line))).toBe(true);
    expect(lines.some((line) => /^\d+ session\.ended /.test(line))).toBe(true);
    expect(lines.at(-1)).toMatch(/^stopped after \S+$/);
  });

  it("shows the Python example worker exactly as clients/python/example_worker.py, which test/client/python-client.test.ts runs", () => {
    // The file starts with a docstring (how to run it) that the README says in prose.
    const file = readFileSync(join(ROOT, "clients/python/example_worker.py"), "utf8").replace(/^"""[\s\S]*?"""\n+/, "");
    expect(exampleAfter("### Python", "python") + "\n").toBe(file);
  });
});
