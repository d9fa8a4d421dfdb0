/**
 * The nemesis: faults on a seeded schedule, one at a time. Each round runs
 * every kind once in a seeded order (so even a short run sees each kind),
 * each for a seeded duration, with a seeded pause between faults. A fault
 * always heals itself when its time is up or the nemesis stops.
 *
 * Stand-ins (this machine has neither iptables/nft nor sch_netem):
 * partitions are blackhole routes in a replica's network namespace
 * (network.ts); latency comes from the harness's TCP proxy between each
 * replica and PostgreSQL (latency-proxy.ts).
 */
import { pause } from "../src/client/retry.js";
import type { LatencyProxy } from "./latency-proxy.js";
import { heal, partition, type PartitionKind } from "./network.js";
import type { ChaosPostgres } from "./postgres.js";
import type { ReplicaSet } from "./replicas.js";
import type { Rng } from "./rng.js";
import type { StormReport } from "./workload.js";

/** Every kind of fault. */
export const FAULT_KINDS = [
  "replica-kill",
  "replica-pause",
  "postgres-restart",
  "postgres-pause",
  "partition-replica-postgres",
  "partition-clients-replica",
  "latency-replica-postgres",
  "retry-storm",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One injected fault. */
export interface Fault {
  kind: FaultKind;
  /** "r2", "postgres", or "postgres+r1" for a storm. */
  target: string;
  /** ms since the run started. */
  atMs: number;
  /** How long it was in force, in ms. */
  durationMs: number;
  detail: string;
}

/** What the nemesis acts on. */
export interface NemesisTargets {
  replicas: ReplicaSet;
  postgres: ChaosPostgres;
  proxy: LatencyProxy;
  /** Runs a retry storm during `outage` (which resolves with its length in ms). */
  storm(jitter: boolean, outage: () => Promise<number>): Promise<StormReport>;
  /** One-way delay of the latency fault, in ms (longer than the clients' attempt deadline). */
  latencyMs: number;
  /** ms since the run started. */
  clock(): number;
  log(line: string): void;
}

/**
 * Injects faults until `signal` aborts, then heals the one in force and
 * returns every fault injected.
 */
export async function runNemesis(rng: Rng, targets: NemesisTargets, signal: AbortSignal): Promise<{ faults: Fault[]; storms: StormReport[] }> {
  const faults: Fault[] = [];
  const storms: StormReport[] = [];
  let stormJitter = rng.chance(0.5);
  while (!signal.aborted) {
    const round = [...FAULT_KINDS];
    for (let i = round.length - 1; i > 0; i -= 1) {
      const j = rng.int(0, i);
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    for (const kind of round) {
      await pause(rng.between(1_000, 4_000), signal);
      if (signal.aborted) break;
      const durationMs = Math.round(rng.between(2_000, 8_000));
      const slot = rng.int(0, targets.replicas.slots.length - 1);
      if (kind === "retry-storm") stormJitter = !stormJitter;
      const fault = await inject(kind, slot, durationMs, stormJitter, targets, signal, storms);
      faults.push(fault);
      targets.log(`[${(fault.atMs / 1000).toFixed(1)}s] ${fault.kind} ${fault.target} for ${(fault.durationMs / 1000).toFixed(1)}s ${fault.detail}`);
    }
  }
  return { faults, storms };
}

async function inject(kind: FaultKind, slot: number, durationMs: number, jitter: boolean, targets: NemesisTargets, signal: AbortSignal, storms: StormReport[]): Promise<Fault> {
  const { replicas, postgres, proxy } = targets;
  const name = `r${slot + 1}`;
  const atMs = targets.clock();
  const hold = async () => {
    const from = targets.clock();
    await pause(durationMs, signal);
    return targets.clock() - from;
  };
  const done = (target: string, held: number, detail = ""): Fault => ({ kind, target, atMs, durationMs: held, detail });
  switch (kind) {
    case "replica-kill": {
      await replicas.kill(slot);
      const held = await hold();
      // The harness restarts it, as a supervisor would.
      await replicas.restart(slot);
      return done(name, held, `(down ${((targets.clock() - atMs) / 1000).toFixed(1)}s until serving again)`);
    }
    case "replica-pause": {
      replicas.freeze(slot);
      try {
        return done(name, await hold(), "(SIGSTOP, then SIGCONT)");
      } finally {
        replicas.thaw(slot);
      }
    }
    case "postgres-restart": {
      await postgres.crash();
      try {
        return done("postgres", await hold(), "(pg_ctl stop -m immediate, then start)");
      } finally {
        await postgres.start();
      }
    }
    case "postgres-pause": {
      postgres.freeze();
      try {
        return done("postgres", await hold(), "(SIGSTOP of the postmaster and every backend, then SIGCONT)");
      } finally {
        postgres.thaw();
      }
    }
    case "partition-replica-postgres":
    case "partition-clients-replica": {
      const side: PartitionKind = kind === "partition-replica-postgres" ? "database" : "clients";
      const net = replicas.slots[slot]!.net;
      partition(net, side);
      try {
        return done(name, await hold(), `(blackhole route to ${side === "database" ? net.databaseAddress : net.clientAddress} in ${net.namespace})`);
      } finally {
        heal(net, side);
      }
    }
    case "latency-replica-postgres": {
      await proxy.setDelay(slot, targets.latencyMs);
      try {
        return done(name, await hold(), `(+${targets.latencyMs} ms each way through the proxy)`);
      } finally {
        await proxy.setDelay(slot, 0);
      }
    }
    case "retry-storm": {
      // The outage: PostgreSQL frozen, so every client's attempts fail (time out) until it thaws.
      const report = await targets.storm(jitter, async () => {
        postgres.freeze();
        try {
          return await hold();
        } finally {
          postgres.thaw();
        }
      });
      storms.push(report);
      return done(
        "postgres",
        report.outageMs,
        `(${report.clients} clients, ${jitter ? "with" : "without"} jitter: ${report.attempts} attempts, drained ${(report.drainMs / 1000).toFixed(1)}s after the outage; ok ${report.ok}, fail ${report.fail}, info ${report.info})`,
      );
    }
  }
}
