/**
 * A real Python gRPC client (grpcio with protoc-generated stubs, nothing
 * tuned for this service) runs a session's lifecycle with an API key, and
 * checks what is refused without one or with a reader's; test/e2e/python/client.py
 * prints a JSON summary that this test checks.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { mintKey } from "../support/credentials.js";

const PYTHON = "/usr/bin/python3";
const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLIENT_SCRIPT = fileURLToPath(new URL("./python/client.py", import.meta.url));
const PROTO_FILES = [
  "sessionmanager/v1/session.proto",
  "sessionmanager/v1/session_manager_service.proto",
  "buf/validate/validate.proto",
  "google/rpc/error_details.proto",
];

const run = promisify(execFile);

let app: App;
let stubsDir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  stubsDir = mkdtempSync(join(tmpdir(), "session-manager-py-stubs-"));
  generateStubs(stubsDir);
  app = await startTestApp({ auth: "required" });
  env = {
    ...process.env,
    PYTHONPATH: stubsDir,
    SM_CREDENTIAL: (await mintKey(app.sql, "writer")).token,
    SM_READER_CREDENTIAL: (await mintKey(app.sql, "reader")).token,
  };
});

afterAll(async () => {
  await app?.stop();
  if (stubsDir) rmSync(stubsDir, { recursive: true, force: true });
});

describe("Python grpcio client", () => {
  it("runs a session lifecycle, a watch and error checks", async () => {
    const userId = uniqueId("py-user");
    const { stdout } = await run(PYTHON, [CLIENT_SCRIPT, `127.0.0.1:${app.port}`, userId], {
      env,
      timeout: 30_000,
    });
    const summary = JSON.parse(stdout);

    expect(summary.session_id).toMatch(/^sess_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(summary.started).toEqual({
      state: "SESSION_STATE_ACTIVE",
      seq: 1,
      type: "session.started",
      metadata: { channel: "python", attempt: 1 },
    });
    expect(summary.appended_seqs).toEqual([2, 3, 4]);
    expect(summary.listed_before_end).toEqual([1, 2, 3, 4]);

    expect(summary.watch).toEqual({
      seqs: [1, 2, 3, 4],
      types: ["session.started", "python.step", "python.step", "python.step"],
      caught_up: true,
      code: "CANCELLED",
    });

    expect(summary.ended).toMatchObject({
      state: "SESSION_STATE_ENDED",
      end_reason: "END_REASON_CLIENT",
      seq: 5,
      type: "session.ended",
    });
    // Ending an ended session is idempotent: the same "session.ended" event.
    expect(summary.ended_again).toEqual({
      state: "SESSION_STATE_ENDED",
      seq: 5,
      event_id: summary.ended.event_id,
    });

    expect(summary.events.map((event: { seq: number }) => event.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(summary.events[0]).toEqual({ seq: 1, type: "session.started", source: "session_manager" });
    expect(summary.events[1]).toEqual({ seq: 2, type: "python.step", source: "python-client" });
    expect(summary.events[4]).toEqual({ seq: 5, type: "session.ended", source: "session_manager" });

    expect(summary.heartbeat_after_end).toEqual({
      code: "FAILED_PRECONDITION",
      reason: "SESSION_ENDED",
      domain: "sessionmanager",
      status_code: 9,
    });
    expect(summary.get_unknown).toEqual({
      code: "NOT_FOUND",
      reason: "SESSION_NOT_FOUND",
      domain: "sessionmanager",
      status_code: 5,
    });

    const refused = (code: string, reason: string, status: number) => ({ code, reason, domain: "sessionmanager", status_code: status });
    expect(summary.auth).toEqual({
      no_credential: refused("UNAUTHENTICATED", "CREDENTIALS_MISSING", 16),
      unknown_key: refused("UNAUTHENTICATED", "CREDENTIALS_INVALID", 16),
      reader_get: { code: "OK" },
      reader_start: refused("PERMISSION_DENIED", "ROLE_NOT_ALLOWED", 7),
    });

    // The server is still healthy after the Python client cancelled its stream.
    const again = await run(PYTHON, [CLIENT_SCRIPT, `127.0.0.1:${app.port}`, uniqueId("py-user")], {
      env,
      timeout: 30_000,
    });
    expect(JSON.parse(again.stdout).events).toHaveLength(5);
  });
});

/** Generates Python message and gRPC stubs with protoc into `dir`. */
function generateStubs(dir: string): void {
  const plugin = execFileSync("which", ["grpc_python_plugin"], { encoding: "utf8" }).trim();
  execFileSync(
    "protoc",
    [
      "-I",
      "proto",
      "-I",
      "proto-vendor",
      // google/protobuf/*.proto from Debian's libprotobuf-dev.
      "-I",
      "/usr/include",
      `--python_out=${dir}`,
      `--grpc_python_out=${dir}`,
      `--plugin=protoc-gen-grpc_python=${plugin}`,
      ...PROTO_FILES,
    ],
    { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] },
  );
}
