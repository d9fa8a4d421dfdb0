/** Builds an in-memory Connect client over the real service and a real database. */
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { createContractValidator } from "../../src/transport/contract-validator.js";
import pino from "pino";
import { expect } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { Sql } from "../../src/db/database.js";
import type { Feed } from "../../src/feed/watch.js";
import type { SessionService } from "../../src/service/session-service.js";
import { createAuthenticator } from "../../src/auth/authenticator.js";
import { createGuard } from "../../src/auth/guard.js";
import { createAuthInterceptor } from "../../src/auth/interceptor.js";
import { createAccessInterceptor } from "../../src/transport/interceptors.js";
import { createRoutes } from "../../src/transport/routes.js";
import { wireService } from "../../src/wiring.js";

/** Names the generated client of SessionManagerService. */
export type SessionClient = Client<typeof SessionManagerService>;

/** Configures `createInMemoryClient`; feed settings default to test-friendly values. */
export interface InMemoryOptions {
  defaultIdleTimeoutMs?: number;
  /** LISTEN/NOTIFY wake-ups (FEED_NOTIFY). Default on, unless TEST_FEED_NOTIFY=off. */
  feedNotify?: boolean;
  pollMs?: number;
  heartbeatMs?: number;
  queueFrames?: number;
  /** Rows per feed query. Default 500. */
  batchSize?: number;
}

/** Holds an in-memory client and the service and feed behind it. */
export interface InMemoryClient {
  client: SessionClient;
  service: SessionService;
  feed: Feed;
  /** Ends the feed's streams and stops its notifier (the pool stays open). */
  close(): Promise<void>;
}

/** Creates a client whose calls run the real handlers in memory (no network), wired by src/wiring.ts. */
export function createInMemoryClient(sql: Sql, options: InMemoryOptions = {}): InMemoryClient {
  const log = pino({ level: "silent" });
  const wiring = wireService({
    sql,
    log,
    defaultIdleTimeoutMs: options.defaultIdleTimeoutMs ?? 1_800_000,
    watchPollMs: options.pollMs ?? 20,
    watchHeartbeatMs: options.heartbeatMs ?? 300,
    watchQueueFrames: options.queueFrames,
    feedBatchSize: options.batchSize,
    feedNotify: options.feedNotify ?? defaultFeedNotify(),
    sweepIntervalMs: 0,
  });
  // AUTH=off: these tests are about the service; test/auth covers credentials.
  const auth = createAuthenticator({ sql, log, mode: "off", jwt: null, cacheMs: 2_000 });
  const guard = createGuard({ sql, streamsPerPrincipal: 100 });
  const transport = createRouterTransport(createRoutes({ service: wiring.service, feed: wiring.feed, guard }), {
    router: { interceptors: [createAccessInterceptor(log), createAuthInterceptor(auth), createValidateInterceptor({ validator: createContractValidator() })] },
  });
  return {
    client: createClient(SessionManagerService, transport),
    service: wiring.service,
    feed: wiring.feed,
    close: () => (auth.close(), wiring.close()),
  };
}

/** Tells whether tests wake feeds with NOTIFY by default: TEST_FEED_NOTIFY=off turns it off suite-wide. */
export function defaultFeedNotify(): boolean {
  return process.env.TEST_FEED_NOTIFY !== "off";
}

/** Awaits a call that must fail, and checks its code and ErrorInfo reason. */
export async function expectError(call: Promise<unknown>, code: Code, reason: string): Promise<ConnectError> {
  const error = await call.then(
    () => null,
    (e: unknown) => ConnectError.from(e),
  );
  expect(error, `expected ${Code[code]} ${reason}`).not.toBeNull();
  expect(Code[error!.code]).toBe(Code[code]);
  const info = error!.findDetails(ErrorInfoSchema);
  expect(info.map((detail) => detail.reason)).toEqual([reason]);
  expect(info[0]!.domain).toBe("sessionmanager");
  return error!;
}

/** Returns the metadata of the error's ErrorInfo detail. */
export function errorMetadata(error: ConnectError): Record<string, string> {
  return error.findDetails(ErrorInfoSchema)[0]?.metadata ?? {};
}
