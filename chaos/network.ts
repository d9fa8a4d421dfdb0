/**
 * The chaos network: one network namespace per replica, joined to the host by
 * a veth pair in its own private /24 (10.213.N.0/24 for replica N). Only these
 * addresses and loopback are ever touched.
 *
 *   host side  smcNh: 10.213.N.1   (clients' source address)
 *                     10.213.N.254 (the replica's database address: its latency proxy)
 *   namespace  smcNn: 10.213.N.2   (the replica listens here)
 *
 * Partitions are blackhole routes inside the replica's namespace, since this
 * machine has no iptables/nft: to 10.213.N.254 cuts the replica from
 * PostgreSQL; to 10.213.N.1 cuts it from its clients (their SYNs arrive, no
 * answer leaves, so clients see silence, not a refusal). Everything is
 * removed at exit and leftovers of a crashed run are removed at start.
 */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";

const NAMESPACE_PREFIX = "smchaos-r";
const LINK = /^smc\d+h$/;

/** Names the addresses of replica `n` (1-based). */
export interface ReplicaNet {
  index: number;
  namespace: string;
  /** Where the replica listens (inside its namespace). */
  replicaAddress: string;
  /** The host's address on the link: clients connect from it. */
  clientAddress: string;
  /** The host's address on the link where the replica's database proxy listens. */
  databaseAddress: string;
}

function ip(args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Describes the addresses of replica `n` (1-based). */
export function replicaNet(n: number): ReplicaNet {
  return {
    index: n,
    namespace: `${NAMESPACE_PREFIX}${n}`,
    replicaAddress: `10.213.${n}.2`,
    clientAddress: `10.213.${n}.1`,
    databaseAddress: `10.213.${n}.254`,
  };
}

/**
 * Removes every namespace and link this harness may have left (names start
 * with smchaos-r / match smcNh), killing the processes still in them; safe
 * to call when there are none.
 */
export function removeNetworks(): void {
  const namespaces = ip(["netns", "list"])
    .split("\n")
    .map((line) => line.split(" ")[0]!)
    .filter((name) => name.startsWith(NAMESPACE_PREFIX));
  for (const name of namespaces) {
    // Processes of a crashed run (its replicas) would outlive their namespace.
    for (const pid of ip(["netns", "pids", name]).split("\n").filter((line) => line !== "")) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    ip(["netns", "delete", name]);
  }
  for (const link of readdirSync("/sys/class/net").filter((name) => LINK.test(name))) {
    try {
      ip(["link", "delete", link]);
    } catch {
      // gone with its peer's namespace meanwhile
    }
  }
}

/**
 * Creates the namespace and veth pair of replica `n`.
 *
 * @throws Error with ip's message when namespaces or veth pairs cannot be
 * created (the partition faults cannot run then; the harness fails loudly).
 */
export function createNetwork(n: number): ReplicaNet {
  const net = replicaNet(n);
  const host = `smc${n}h`;
  const inner = `smc${n}n`;
  ip(["netns", "add", net.namespace]);
  ip(["link", "add", host, "type", "veth", "peer", "name", inner]);
  ip(["link", "set", inner, "netns", net.namespace]);
  ip(["addr", "add", `${net.clientAddress}/24`, "dev", host]);
  ip(["addr", "add", `${net.databaseAddress}/24`, "dev", host]);
  ip(["link", "set", host, "up"]);
  ip(["-n", net.namespace, "addr", "add", `${net.replicaAddress}/24`, "dev", inner]);
  ip(["-n", net.namespace, "link", "set", inner, "up"]);
  ip(["-n", net.namespace, "link", "set", "lo", "up"]);
  return net;
}

/** The two partitions of one replica. */
export type PartitionKind = "database" | "clients";

function partitionTarget(net: ReplicaNet, kind: PartitionKind): string {
  return `${kind === "database" ? net.databaseAddress : net.clientAddress}/32`;
}

/** Cuts replica `net` from PostgreSQL or from its clients (a blackhole route in its namespace). */
export function partition(net: ReplicaNet, kind: PartitionKind): void {
  ip(["-n", net.namespace, "route", "replace", "blackhole", partitionTarget(net, kind)]);
}

/** Removes the partition again (no error if there is none). */
export function heal(net: ReplicaNet, kind: PartitionKind): void {
  try {
    ip(["-n", net.namespace, "route", "delete", "blackhole", partitionTarget(net, kind)]);
  } catch {
    // not partitioned
  }
}
