/**
 * Preloaded into a server process by bench/stream-memory.ts (`--expose-gc
 * --import tsx --import ./bench/memory/probe.ts`): on SIGUSR2 it runs two
 * full garbage collections and writes one line to stderr,
 * `memory {"heapUsed":...,"external":...,"arrayBuffers":...,"rss":...}`
 * (bytes, process.memoryUsage()). With PROBE_HEAP_SNAPSHOT_DIR set it also
 * writes a heap snapshot there (v8.writeHeapSnapshot) for each probe.
 * Changes nothing else.
 */
import { writeHeapSnapshot } from "node:v8";
process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const { heapUsed, external, arrayBuffers, rss } = process.memoryUsage();
  const dir = process.env.PROBE_HEAP_SNAPSHOT_DIR;
  if (dir) writeHeapSnapshot(`${dir}/probe-${process.pid}-${Date.now()}.heapsnapshot`);
  process.stderr.write(`memory ${JSON.stringify({ heapUsed, external, arrayBuffers, rss })}\n`);
});
