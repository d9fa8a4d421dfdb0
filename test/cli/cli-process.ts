/** Runs the `session-manager` CLI as a child process, as an operator would. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { databaseUrl } from "../support/app.js";
import { waitFor } from "../support/wait.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;
const BIN = `${ROOT}bin/session-manager.js`;

/** Holds a finished CLI run. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Holds a running CLI process whose stdout is read line by line. */
export interface RunningCli {
  child: ChildProcess;
  /** Complete stdout lines so far. */
  lines: string[];
  stderr(): string;
  /** Waits until `predicate(lines)` holds; rejects after `timeoutMs` with what was printed. */
  waitFor(predicate: (lines: string[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function environment(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, DATABASE_URL: databaseUrl(), LOG_LEVEL: "silent", ...extra };
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [BIN, ...args], { cwd: ROOT, env: environment(env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts the CLI and keeps it running (for `tail`). */
export function startCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const child = spawn(NODE, [BIN, ...args], { cwd: ROOT, env: environment(env), stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let partial = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    const parts = (partial + chunk.toString("utf8")).split("\n");
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => stderr,
    async waitFor(predicate, timeoutMs = 20_000) {
      const describe = () => `condition (exit ${child.exitCode}); stdout:\n${lines.join("\n")}\nstderr:\n${stderr}`;
      await waitFor(
        () => {
          if (predicate(lines)) return true;
          if (child.exitCode !== null) throw new Error(`the CLI exited before the ${describe()}`);
          return false;
        },
        { timeoutMs, intervalMs: 25, message: describe },
      );
    },
    async stop(signal = "SIGINT") {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
