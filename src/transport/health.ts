/**
 * The standard gRPC health service (grpc.health.v1.Health), so load
 * balancers, Kubernetes probes and `grpc_health_probe` can check a replica.
 * A replica is SERVING while its database answers; the service name "" (the
 * server) and "sessionmanager.v1.SessionManagerService" are known, any other
 * name is NOT_FOUND as the protocol asks.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { Health, HealthCheckResponse_ServingStatus as Status, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";

/** Configures `registerHealth`. */
export interface HealthOptions {
  /** Resolves true while the replica can serve (its database answers). */
  isServing(): Promise<boolean>;
  /** How often Watch re-checks, in ms. Default 5000. */
  watchIntervalMs?: number;
  /** Aborted when the server shuts down: Watch streams report NOT_SERVING and end. */
  shutdown?: AbortSignal;
}

const KNOWN = new Set(["", SessionManagerService.typeName]);

/** Registers grpc.health.v1.Health (Check and Watch) on a router. */
export function registerHealth(router: ConnectRouter, options: HealthOptions): void {
  const intervalMs = options.watchIntervalMs ?? 5_000;
  const status = async () => ((await options.isServing().catch(() => false)) ? Status.SERVING : Status.NOT_SERVING);
  router.service(Health, {
    async check(req) {
      if (!KNOWN.has(req.service)) throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status: await status() });
    },
    async *watch(req, ctx) {
      if (!KNOWN.has(req.service)) {
        yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
        return;
      }
      const stop = options.shutdown ? AbortSignal.any([ctx.signal, options.shutdown]) : ctx.signal;
      let last: Status | null = null;
      while (!stop.aborted) {
        const current = await status();
        if (current !== last) yield create(HealthCheckResponseSchema, { status: current });
        last = current;
        await sleep(intervalMs, undefined, { signal: stop }).catch(() => {});
      }
      if (options.shutdown?.aborted && !ctx.signal.aborted) yield create(HealthCheckResponseSchema, { status: Status.NOT_SERVING });
    },
  });
}
