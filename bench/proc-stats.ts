/**
 * Reads process numbers from /proc (Linux) and summarises samples, for the
 * benchmarks.
 */
import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const CLOCK_TICKS_PER_S = 100;

/** Returns a process's resident set size (VmRSS), in KiB. */
export function readRssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** Returns a process's CPU time (user + system, all threads), in ms. */
export function readCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces; fields after it are plain.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_S;
}

/** Returns this process's CPU time (user + system), in ms. */
export function ownCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** Returns the q-quantile (0..1) of `sorted` (ascending), nearest rank; NaN when empty. */
export function quantile(sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

/** Returns the current time in ms since the epoch with sub-ms precision, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The machine's CPU times from /proc/stat, in ms summed over every core: busy (all but idle and iowait) and steal. */
export function readMachineCpuMs(): { busy: number; steal: number; total: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
  const toMs = (ticks: number) => (ticks * 1000) / CLOCK_TICKS_PER_S;
  return { busy: toMs(user + nice + system + irq + softirq), steal: toMs(steal), total: toMs(user + nice + system + idle + iowait + irq + softirq + steal) };
}
