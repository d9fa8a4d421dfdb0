/**
 * A TCP proxy that adds latency, standing in for `tc qdisc netem` (this
 * machine's kernel has no sch_netem). Each replica reaches PostgreSQL through
 * one listener; the nemesis sets a listener's one-way delay (ms, both
 * directions) over IPC. Bytes keep their order: a chunk is released at
 * max(arrival + delay, release time of the chunk before it). Closing either
 * side closes the other, so a PostgreSQL restart resets the replica's
 * connections as it would without the proxy.
 *
 * Run as its own process (`startLatencyProxy`) so the harness's own load
 * never delays database traffic.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { fileURLToPath } from "node:url";

/** One listener: `listen` on the host, forwarding to `upstream`. */
export interface ProxyRoute {
  listenHost: string;
  listenPort: number;
  upstreamHost: string;
  upstreamPort: number;
}

/** Messages from the harness to the proxy process. */
type ProxyCommand = { type: "delay"; route: number; ms: number };

/** Controls a running proxy process. */
export interface LatencyProxy {
  /** The proxy process's pid. */
  pid: number;
  /** Sets route `route`'s one-way delay in ms (0: none); resolves when the proxy applied it. */
  setDelay(route: number, ms: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the proxy as a child process with `routes`; resolves once every listener is bound. */
export async function startLatencyProxy(routes: ProxyRoute[]): Promise<LatencyProxy> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [JSON.stringify(routes)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [first] = (await Promise.race([once(child, "message"), once(child, "exit").then(() => [{ type: "exited" }])])) as [{ type: string }];
  if (first.type !== "ready") throw new Error("the latency proxy did not start");
  const waiting: (() => void)[] = [];
  child.on("message", () => {
    waiting.shift()?.();
  });
  return {
    pid: child.pid!,
    async setDelay(route, ms) {
      const acked = new Promise<void>((resolve) => waiting.push(resolve));
      child.send({ type: "delay", route, ms } satisfies ProxyCommand);
      await acked;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * Forwards `from` to `to`, each chunk after `delay()` ms, in order: one FIFO
 * queue per direction drained by one timer. (A timer per chunk reordered
 * chunks whose release times fell in the same millisecond from timers of
 * different lengths, e.g. when the delay changed, and corrupted the
 * PostgreSQL protocol stream: postgres.js then failed with ERR_OUT_OF_RANGE.)
 */
function pipeDelayed(from: net.Socket, to: net.Socket, delay: () => number): void {
  const queue: { release: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | null = null;
  const drain = () => {
    timer = null;
    const now = Date.now();
    while (queue.length > 0 && queue[0]!.release <= now) {
      const { chunk } = queue.shift()!;
      if (!to.destroyed) to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(drain, queue[0]!.release - now);
  };
  from.on("data", (chunk: Buffer) => {
    const ms = delay();
    if (ms === 0 && queue.length === 0) {
      to.write(chunk);
      return;
    }
    queue.push({ release: Math.max(Date.now() + ms, queue.at(-1)?.release ?? 0), chunk });
    timer ??= setTimeout(drain, queue[0]!.release - Date.now());
  });
  from.on("close", () => {
    if (timer !== null) clearTimeout(timer);
  });
}

function serve(routes: ProxyRoute[]): void {
  const delays = routes.map(() => 0);
  const servers = routes.map((route, index) =>
    net.createServer({ noDelay: true }, (client) => {
      const upstream = net.connect({ host: route.upstreamHost, port: route.upstreamPort, noDelay: true });
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      for (const socket of [client, upstream]) {
        socket.on("error", close);
        socket.on("close", close);
      }
      pipeDelayed(client, upstream, () => delays[index]!);
      pipeDelayed(upstream, client, () => delays[index]!);
    }),
  );
  let listening = 0;
  servers.forEach((server, index) =>
    server.listen(routes[index]!.listenPort, routes[index]!.listenHost, () => {
      listening += 1;
      if (listening === servers.length) process.send!({ type: "ready" });
    }),
  );
  process.on("message", (command: ProxyCommand) => {
    delays[command.route] = command.ms;
    process.send!({ type: "ack" });
  });
  // Exit with the harness, also when it was SIGKILLed ("disconnect" alone was seen not to fire then).
  process.on("disconnect", () => process.exit(0));
  setInterval(() => {
    if (!process.connected) process.exit(0);
  }, 1_000);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve(JSON.parse(process.argv[2]!) as ProxyRoute[]);
