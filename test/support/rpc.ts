/** Builds an in-memory Connect client over the real service and a real database. */
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import pino from "pino";
import { expect } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { Sql } from "../../src/db/database.js";
import { createFeed, type Feed } from "../../src/feed/watch.js";
import { createSessionService } from "../../src/service/session-service.js";
import { createAccessInterceptor } from "../../src/transport/interceptors.js";
import { createRoutes } from "../../src/transport/routes.js";

/** Names the generated client of SessionManagerService. */
export type SessionClient = Client<typeof SessionManagerService>;

/** Creates a client whose calls run the real handlers in memory (no network). */
export function createInMemoryClient(sql: Sql, options: { defaultIdleTimeoutMs?: number } = {}): { client: SessionClient; feed: Feed } {
  const log = pino({ level: "silent" });
  const service = createSessionService({ sql, defaultIdleTimeoutMs: options.defaultIdleTimeoutMs ?? 1_800_000, log });
  const feed = createFeed({ sql, pollMs: 20, heartbeatMs: 300, log });
  const transport = createRouterTransport(createRoutes({ service, feed }), {
    router: { interceptors: [createAccessInterceptor(log), createValidateInterceptor()] },
  });
  return { client: createClient(SessionManagerService, transport), feed };
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
