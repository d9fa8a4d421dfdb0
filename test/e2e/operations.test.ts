/**
 * What operators and load balancers use, over a real socket: gRPC health,
 * server reflection (buf curl without local protos), the sweeper wired into
 * the server, and the keys / verify / prune commands as processes, with
 * credentials required as in production.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { EndReason, SessionState } from "../../gen/sessionmanager/v1/session_pb.js";
import type { App } from "../../src/app.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { sendCredential } from "../support/credentials.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);
let db: IsolatedDatabase;
let app: App;
let operatorKey: { keyId: string; token: string };

const CLI = ["node_modules/.bin/node", ["bin/session-manager.js"]] as const;
const cliEnv = () => ({ ...process.env, DATABASE_URL: db.url, LOG_LEVEL: "silent" });

/** Runs `keys create` as an operator would and reads the key id and the secret it prints. */
async function createKeyWithCli(name: string, role: string): Promise<{ keyId: string; token: string }> {
  const { stdout } = await run(CLI[0], [...CLI[1], "keys", "create", "--name", name, "--role", role], { env: cliEnv() });
  const keyId = /^key id: (key_\S+)$/m.exec(stdout)?.[1];
  const token = /^secret: (smk_\S+)$/m.exec(stdout)?.[1];
  expect(keyId, stdout).toBeDefined();
  expect(token, stdout).toBeDefined();
  return { keyId: keyId!, token: token! };
}

beforeAll(async () => {
  db = await createIsolatedDatabase("sm_ops");
  app = await startTestApp({ databaseUrl: db.url, sweepIntervalMs: 200, auth: "required", authCacheMs: 200 });
  operatorKey = await createKeyWithCli("operator", "writer");
});
afterAll(async () => {
  await app.stop();
  await db.drop();
});

const client = (token = operatorKey.token) =>
  createClient(
    SessionManagerService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${app.port}`, httpVersion: "1.1", interceptors: [sendCredential(token)] }),
  );

describe("operations", () => {
  it("answers gRPC health checks: SERVING for the server and the service, NOT_FOUND for others", async () => {
    const definition = protoLoader.loadSync("grpc/health/v1/health.proto", { includeDirs: ["proto-vendor"], enums: String });
    type Callback = (error: grpc.ServiceError | null, response: { status: string }) => void;
    type HealthClient = grpc.Client & { check(request: { service: string }, callback: Callback): void };
    const { grpc: g } = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: { health: { v1: { Health: new (address: string, credentials: grpc.ChannelCredentials) => HealthClient } } };
    };
    const health = new g.health.v1.Health(`127.0.0.1:${app.port}`, grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise<{ status?: string; code?: number }>((resolve) =>
        health.check({ service }, (error, response) =>
          resolve(error ? { code: error.code } : { status: response.status }),
        ),
      );
    expect(await check("")).toEqual({ status: "SERVING" });
    expect(await check("sessionmanager.v1.SessionManagerService")).toEqual({ status: "SERVING" });
    expect(await check("nope.Service")).toEqual({ code: grpc.status.NOT_FOUND });
    health.close();
  });

  it("lets buf curl list methods without a credential (reflection) and call them with a key", async () => {
    const base = `http://127.0.0.1:${app.port}`;
    const buf = ["node_modules/.bin/buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge"];
    const listed = await run(buf[0]!, [...buf.slice(1), "--list-methods", base]);
    expect(listed.stdout.split("\n")).toContain("sessionmanager.v1.SessionManagerService/StartSession");
    const userId = uniqueId("buf");
    const request = ["-d", JSON.stringify({ record_id: uniqueId("rec"), user_id: userId }), `${base}/sessionmanager.v1.SessionManagerService/StartSession`];
    const refused = await run(buf[0]!, [...buf.slice(1), ...request]).catch((error: { stderr: string }) => error);
    expect((refused as { stderr: string }).stderr).toMatch(/unauthenticated/);
    const started = await run(buf[0]!, [...buf.slice(1), "-H", `authorization: Bearer ${operatorKey.token}`, ...request]);
    expect(JSON.parse(started.stdout).session.userId).toBe(userId);
  });

  it("manages API keys with the CLI: the secret is printed once and stored only as a hash; revoked keys are refused", async () => {
    const key = await createKeyWithCli("revocable", "reader");
    await client(key.token).listSessions({ userId: uniqueId("keys") });
    const [row] = await app.sql<{ secret_hash: Buffer }[]>`select secret_hash from api_keys where key_id = ${key.keyId}`;
    expect(row!.secret_hash).toHaveLength(32);
    const secret = key.token.slice(-43);
    const dump = await app.sql<{ t: string }[]>`select row_to_json(api_keys)::text as t from api_keys`;
    for (const { t } of dump) expect(t).not.toContain(secret);

    const listed = await run(CLI[0], [...CLI[1], "keys", "list"], { env: cliEnv() });
    const line = listed.stdout.split("\n").find((l) => l.startsWith(key.keyId))!;
    expect(line).toMatch(/revocable\s+reader\s+\S+Z\s+\S+Z\s+-$/);
    expect(listed.stdout).not.toContain("smk_");

    const revoked = await run(CLI[0], [...CLI[1], "keys", "revoke", key.keyId], { env: cliEnv() });
    expect(revoked.stdout).toBe(`revoked ${key.keyId}\n`);
    await waitFor(
      () =>
        client(key.token)
          .listSessions({ userId: uniqueId("keys") })
          .then(
            () => false,
            (error: unknown) => ConnectError.from(error).code === Code.Unauthenticated,
          ),
      { message: "the revoked key refused" },
    );
    const again = await run(CLI[0], [...CLI[1], "keys", "list"], { env: cliEnv() });
    expect(again.stdout.split("\n").find((l) => l.startsWith(key.keyId))).toMatch(/\S+Z$/);
    const unknown = await run(CLI[0], [...CLI[1], "keys", "revoke", "key_nope"], { env: cliEnv() }).catch((error: { code: number }) => error);
    expect((unknown as { code: number }).code).toBe(1);
    const badRole = await run(CLI[0], [...CLI[1], "keys", "create", "--name", "x", "--role", "root"], { env: cliEnv() }).catch((error: { code: number }) => error);
    expect((badRole as { code: number }).code).toBe(2);
  });

  it("runs the sweeper: a lapsed session gets its session.ended event without any call", async () => {
    const rpc = client();
    const { session } = await rpc.startSession({ recordId: uniqueId("rec"), userId: uniqueId("user"), idleTimeout: { seconds: 1n } });
    const sessionId = session!.sessionId;
    const events = await waitFor(
      async () => {
        const types = (await rpc.listSessionEvents({ sessionId })).events.map((e) => e.type);
        return types.length >= 2 && types;
      },
      { timeoutMs: 10_000, intervalMs: 100, message: "the sweeper's session.ended event" },
    );
    expect(events).toEqual(["session.started", "session.ended"]);
    expect((await rpc.getSession({ sessionId })).session).toMatchObject({ state: SessionState.ENDED, endReason: EndReason.IDLE_TIMEOUT, lastSeq: 2n });
  });

  it("verifies chains and prunes through the CLI", async () => {
    const rpc = client();
    const { session } = await rpc.startSession({ recordId: uniqueId("rec"), userId: uniqueId("user") });
    await rpc.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: session!.sessionId, type: "care.x", source: "t" });
    await rpc.endSession({ recordId: uniqueId("rec"), sessionId: session!.sessionId });
    const env = cliEnv();
    const cli = CLI;
    const verified = await run(cli[0], [...cli[1], "verify", "--session", session!.sessionId], { env });
    expect(verified.stdout).toMatch(/^verified 1 sessions, 3 events: every chain holds/);
    const dry = await run(cli[0], [...cli[1], "prune", "--ended-before", "2999-01-01T00:00:00Z", "--dry-run"], { env });
    expect(dry.stdout).toMatch(/^would remove \d+ sessions and \d+ events/);
    expect((await rpc.getSession({ sessionId: session!.sessionId })).session!.state).toBe(SessionState.ENDED);
    const bad = await run(cli[0], [...cli[1], "prune", "--ended-before", "yesterday"], { env }).catch((error: { code: number }) => error);
    expect((bad as { code: number }).code).toBe(2);
  });
});
