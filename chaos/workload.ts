/**
 * The clients: writers that run sessions (start with both conflict
 * policies, append, heartbeat, pause/resume, update, end) for a few shared
 * users, and the retry storm. Every call is one operation in the history
 * (history.ts); its attempts go to random live replicas with the SAME
 * record_id, each with a deadline, with the SDK's backoff in between
 * (src/client/retry.ts), until an answer or the operation's time budget is
 * spent (then it is info: indeterminate).
 */
import { Code } from "@connectrpc/connect";
import { SessionManagerError } from "../src/client/errors.js";
import { createBackoff, pause, type Backoff } from "../src/client/retry.js";
import { ConflictPolicy } from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { SessionClient } from "../test/replicas/replica-process.js";
import type { History, Op, OpKind } from "./history.js";
import type { ReplicaSet } from "./replicas.js";
import type { Rng } from "./rng.js";

/** Codes that are the service's answer: nothing was written. Every other code may hide a commit and is retried. */
const DEFINITE_CODES = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unauthenticated,
  Code.Unimplemented,
  Code.ResourceExhausted,
]);

/** The event types writers append. */
export const APPEND_TYPES = ["care.chaos.input", "care.chaos.note"] as const;

/** How one operation is attempted. */
export interface CallPolicy {
  /** Deadline of each attempt, in ms. */
  attemptTimeoutMs: number;
  /** After this many ms without an answer the operation is info. */
  budgetMs: number;
  /** The wait schedule between attempts. */
  backoff(): Backoff;
}

/** Shared by every client of a run. */
export interface WorkloadContext {
  replicas: ReplicaSet;
  history: History;
  /** Stops invoking new operations (running ones finish). */
  signal: AbortSignal;
  /** Attempt errors by code name (each failed attempt, retried or not). */
  attemptErrors: Record<string, number>;
  /** The first message of each code and operation kind that is neither a timeout nor a service answer (e.g. INTERNAL), for diagnosis. */
  errorSamples: Record<string, string>;
}

type Attempt<T> = (client: SessionClient, timeoutMs: number) => Promise<T>;
/** `definite`: the last attempt was answered with a refusal (the operation may still be info, see `execute`). */
type Outcome<T> = { ok: true; value: T } | { ok: false; error: SessionManagerError; definite: boolean };

/** Runs `op` to completion as the module comment says and records its outcome. */
export async function execute<T>(ctx: WorkloadContext, rng: Rng, op: Op, policy: CallPolicy, attempt: Attempt<T>, resultOf: (value: T) => Op["result"]): Promise<Outcome<T>> {
  const deadline = performance.now() + policy.budgetMs;
  const backoff = policy.backoff();
  let last: SessionManagerError | null = null;
  /** An attempt ended without an answer: it may still be in flight and commit later. */
  let inFlight = false;
  for (let attempts = 1; ; attempts += 1) {
    const alive = ctx.replicas.alive();
    if (alive.length > 0) {
      const replica = rng.pick(alive);
      const client = rng.chance(0.5) ? replica.grpc : replica.connect;
      try {
        const value = await attempt(client, policy.attemptTimeoutMs);
        ctx.history.complete(op, "ok", { attempts, result: resultOf(value) });
        return { ok: true, value };
      } catch (thrown) {
        last = SessionManagerError.from(thrown);
        const name = last.codeName;
        ctx.attemptErrors[name] = (ctx.attemptErrors[name] ?? 0) + 1;
        // Errors the client's own transport raised (e.g. EPIPE to a killed replica, reported as INTERNAL) are marked: they are not answers.
        const sample = `${op.kind} ${describe(last)}${last.cause.isWireError ? "" : " (client transport)"}`;
        if (!DEFINITE_CODES.has(last.code) && last.code !== Code.DeadlineExceeded && ctx.errorSamples[sample] === undefined) {
          ctx.errorSamples[sample] = `${last.message} (replica ${replica.name}, ${client === replica.grpc ? "grpc" : "connect"}, at ${op.invokeMs} ms)`;
        }
        if (DEFINITE_CODES.has(last.code) && last.cause.isWireError) {
          // A refusal proves nothing about an earlier attempt that got no answer: its request may
          // still reach a replica and commit later (seen: a request held up by a partition committed
          // 5 s after its deadline, after the retry was refused). Then the operation is info.
          if (inFlight) ctx.history.complete(op, "info", { attempts, error: `${describe(last)} after an attempt without an answer` });
          else ctx.history.complete(op, "fail", { attempts, error: describe(last) });
          return { ok: false, error: last, definite: true };
        }
        inFlight = true;
      }
    }
    if (performance.now() >= deadline) {
      ctx.history.complete(op, "info", { attempts, error: last === null ? "no live replica" : describe(last) });
      return { ok: false, error: last ?? SessionManagerError.from(new Error("no live replica")), definite: false };
    }
    await backoff.wait();
  }
}

function describe(error: SessionManagerError): string {
  return `${error.codeName}${error.reason === "" ? "" : ` ${error.reason}`}`;
}

/** A writer's settings. */
export interface WriterOptions {
  name: string;
  userId: string;
  rng: Rng;
  policy: CallPolicy;
  /** Pause between two operations, in ms. */
  thinkMs: [number, number];
}

/**
 * Runs one writer until `ctx.signal` aborts: it starts sessions for its user
 * (racing the other writer of that user), and acts on its current session,
 * adopting the other writer's open session when its start is refused.
 */
export async function runWriter(ctx: WorkloadContext, options: WriterOptions): Promise<void> {
  const { rng, userId, name } = options;
  let current: string | null = null;
  let count = 0;
  const recordId = () => `${name}-${++count}`;
  const invoke = (kind: OpKind, sessionId: string, extra: Partial<Op> = {}) =>
    ctx.history.invoke({ kind, process: name, userId, recordId: kind === "heartbeat" ? "" : recordId(), sessionId, ...extra });
  const run = <T>(op: Op, attempt: Attempt<T>, resultOf: (value: T) => Op["result"] = () => ({})) => execute(ctx, rng, op, options.policy, attempt, resultOf);

  while (!ctx.signal.aborted) {
    if (current === null || rng.chance(0.04)) {
      const policy = rng.chance(0.5) ? "supersede" : "reject";
      const op = invoke("start", "", { policy });
      const idleSeconds = rng.chance(0.3) ? rng.int(1, 3) : 60;
      const maxDuration = rng.chance(0.1) ? { seconds: BigInt(rng.int(3, 8)) } : undefined;
      const outcome = await run(
        op,
        (client, timeoutMs) =>
          client.startSession(
            {
              recordId: op.recordId,
              userId,
              idleTimeout: { seconds: BigInt(idleSeconds) },
              maxDuration,
              conflictPolicy: policy === "supersede" ? ConflictPolicy.SUPERSEDE : ConflictPolicy.REJECT,
              metadata: { writer: name },
            },
            { timeoutMs },
          ),
        (response) => ({ sessionId: response.session!.sessionId, eventId: response.event!.eventId }),
      );
      if (outcome.ok) current = outcome.value.session!.sessionId;
      else if (outcome.definite && outcome.error.reason === "ACTIVE_SESSION_EXISTS") current = outcome.error.metadata.session_id ?? null;
      else current = null;
    } else {
      const sessionId = current;
      const roll = rng.next();
      let outcome: Outcome<unknown>;
      if (roll < 0.4) {
        const op = invoke("append", sessionId);
        const type = rng.pick(APPEND_TYPES);
        outcome = await run(
          op,
          (client, timeoutMs) => client.appendSessionEvent({ recordId: op.recordId, sessionId, type, source: "chaos", payload: { op: op.index } }, { timeoutMs }),
          (response) => ({ eventId: response.event!.eventId }),
        );
      } else if (roll < 0.55) {
        outcome = await run(invoke("heartbeat", sessionId), (client, timeoutMs) => client.heartbeatSession({ sessionId }, { timeoutMs }));
      } else if (roll < 0.65) {
        const op = invoke("pause", sessionId);
        outcome = await run(op, (client, timeoutMs) => client.pauseSession({ recordId: op.recordId, sessionId }, { timeoutMs }));
      } else if (roll < 0.77) {
        const op = invoke("resume", sessionId);
        outcome = await run(op, (client, timeoutMs) => client.resumeSession({ recordId: op.recordId, sessionId }, { timeoutMs }));
      } else if (roll < 0.88) {
        const update = rng.chance(0.5) ? { isTrainingData: rng.chance(0.5) } : { metadata: { writer: name, n: String(count) } };
        const op = invoke("update", sessionId, { update });
        outcome = await run(op, (client, timeoutMs) =>
          client.updateSession(
            { recordId: op.recordId, session: { sessionId, ...update }, updateMask: { paths: [update.metadata === undefined ? "is_training_data" : "metadata"] } },
            { timeoutMs },
          ),
        );
      } else {
        const op = invoke("end", sessionId);
        outcome = await run(
          op,
          (client, timeoutMs) => client.endSession({ recordId: op.recordId, sessionId }, { timeoutMs }),
          (response) => ({ eventId: response.event!.eventId }),
        );
        if (outcome.ok || outcome.definite) current = null;
      }
      if (!outcome.ok && outcome.definite && (outcome.error.reason === "SESSION_ENDED" || outcome.error.reason === "SESSION_NOT_FOUND")) current = null;
    }
    await pause(rng.between(options.thinkMs[0], options.thinkMs[1]));
  }
}

/** A backoff without jitter: every client waits exactly initialMs, 2x, 4x ... up to maxMs (what the storm's "no jitter" half uses). */
export function createFixedBackoff({ initialMs, maxMs }: { initialMs: number; maxMs: number }): Backoff {
  let waits = 0;
  return {
    wait: (signal) => pause(Math.min(maxMs, initialMs * 2 ** waits++), signal),
    reset() {
      waits = 0;
    },
  };
}

/** What one storm did. */
export interface StormReport {
  clients: number;
  jitter: boolean;
  outageMs: number;
  /** From the end of the outage to the last storm operation's completion, in ms. */
  drainMs: number;
  attempts: number;
  ok: number;
  fail: number;
  info: number;
}

/**
 * Runs a retry storm: `clients` clients each start (and then end) a session
 * of their own user while `outage` runs, all retrying at once; resolves when
 * every one has completed. `jitter` picks the SDK's jittered backoff or a
 * fixed schedule. `outage` resolves when the outage is over.
 */
export async function runStorm(ctx: WorkloadContext, rng: Rng, options: { tag: string; clients: number; jitter: boolean; outage: () => Promise<number> }): Promise<StormReport> {
  const policy: CallPolicy = {
    attemptTimeoutMs: 2_000,
    budgetMs: 60_000,
    backoff: () => (options.jitter ? createBackoff({ initialMs: 100, maxMs: 2_000 }) : createFixedBackoff({ initialMs: 100, maxMs: 2_000 })),
  };
  const before = ctx.history.ops.length;
  let outageEnd = 0;
  const clients = Array.from({ length: options.clients }, async (_, k) => {
    const name = `${options.tag}-${k}`;
    const clientRng = rng.fork();
    const userId = `${name}-user`;
    const start = ctx.history.invoke({ kind: "start", process: name, userId, recordId: `${name}-1`, sessionId: "", policy: "reject" });
    const started = await execute(
      ctx,
      clientRng,
      start,
      policy,
      (client, timeoutMs) => client.startSession({ recordId: start.recordId, userId, idleTimeout: { seconds: 60n } }, { timeoutMs }),
      (response) => ({ sessionId: response.session!.sessionId, eventId: response.event!.eventId }),
    );
    if (!started.ok) return;
    const sessionId = started.value.session!.sessionId;
    const end = ctx.history.invoke({ kind: "end", process: name, userId, recordId: `${name}-2`, sessionId });
    await execute(ctx, clientRng, end, policy, (client, timeoutMs) => client.endSession({ recordId: end.recordId, sessionId }, { timeoutMs }), (response) => ({
      eventId: response.event!.eventId,
    }));
  });
  const outageMs = await options.outage();
  outageEnd = performance.now();
  await Promise.all(clients);
  const drainMs = Math.round(performance.now() - outageEnd);
  const ops = ctx.history.ops.slice(before).filter((op) => op.process.startsWith(`${options.tag}-`));
  const count = (outcome: Op["outcome"]) => ops.filter((op) => op.outcome === outcome).length;
  return {
    clients: options.clients,
    jitter: options.jitter,
    outageMs,
    drainMs,
    attempts: ops.reduce((sum, op) => sum + op.attempts, 0),
    ok: count("ok"),
    fail: count("fail"),
    info: count("info"),
  };
}
