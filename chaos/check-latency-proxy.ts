/**
 * Checks that chaos/latency-proxy.ts keeps bytes in order while its delay
 * changes under a stream (the proxy once reordered chunks then and corrupted
 * PostgreSQL's protocol): `node --import tsx chaos/check-latency-proxy.ts`,
 * about 2 s, exit 0 when 800 one-byte writes arrive complete and in order.
 */
import net from "node:net";
import { waitFor } from "../test/support/wait.js";
import { freePort } from "../test/support/ports.js";
import { startLatencyProxy } from "./latency-proxy.js";
const received: number[] = [];
const upstream = net.createServer((s) => s.on("data", (d: Buffer) => received.push(...d))).listen(0, "127.0.0.1");
await new Promise((r) => upstream.once("listening", r));
const port = (upstream.address() as net.AddressInfo).port;
const listenPort = await freePort();
const proxy = await startLatencyProxy([{ listenHost: "127.0.0.1", listenPort, upstreamHost: "127.0.0.1", upstreamPort: port }]);
const c = net.connect({ host: "127.0.0.1", port: listenPort, noDelay: true });
await new Promise((r) => c.once("connect", r));
let n = 0;
for (let round = 0; round < 40; round++) {
  await proxy.setDelay(0, round % 2 === 0 ? 30 + (round % 7) * 10 : 0);
  for (let i = 0; i < 20; i++) { c.write(Buffer.from([n++ % 256])); await new Promise((r) => setTimeout(r, 1)); }
}
// Every byte is released within the longest delay (90 ms); wait for all of them.
await waitFor(() => received.length === n, { timeoutMs: 5_000, message: () => `${n} bytes (got ${received.length})` }).catch(() => {});
const ok = received.length === n && received.every((v, i) => v === i % 256);
console.log("sent", n, "received", received.length, "in order:", ok);
await proxy.stop(); c.destroy(); upstream.close();
process.exit(ok ? 0 : 1);
