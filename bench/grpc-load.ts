/**
 * gRPC load generator for bench/lifecycle.ts: unary calls whose bodies differ
 * per request (unique ids), which h2load cannot send. Runs as its own process,
 * like wrk and h2load, so its CPU counts as client CPU.
 *
 * `--connections` HTTP/2 connections (raw node:http2, cleartext; default
 * one; more spread the calls over WORKERS processes, which share a port by
 * connection), `--streams` calls in flight over them, round-robin: each finished call starts the next until `--seconds` have passed,
 * then the calls in flight finish. A request is framed (5-byte gRPC prefix)
 * from parts encoded once, the constant fields (`--fixed`, hex of a protobuf
 * message the caller encoded) and the field keys, plus its own string fields
 * (`--field`): protobuf lets a message's fields come in any order, so the
 * concatenation is one message. No grpc-js or Connect client: they cost as
 * much CPU per call as the server they measure.
 *
 * Field templates (`--field <number>=<template>`) may use {tag} (`--tag`),
 * {n} (the request's number, from 1) and {id}: the next line of `--ids`,
 * round-robin from line `--ids-from` (0-based), or with `--ids-once` each line
 * at most once (the run stops early when they run out: "exhausted").
 *
 * Answers are counted by grpc-status (from the trailers, or the headers of a
 * trailers-only answer); errors = anything but 0, a missing status or a reset
 * stream. Prints one line "GRPC_LOAD_RESULT {json}": requests, errors,
 * statuses, error samples, duration and latency percentiles (us), ids used.
 *
 * Uses only Node built-ins, so it runs without tsx (Node strips the types):
 *
 *   node bench/grpc-load.ts --url http://127.0.0.1:8080/pkg.Service/Method \
 *     --seconds 10 --streams 50 --tag t1 --fixed 1a0b... --field 1=evt-{tag}-{n} --field 2={id} --ids ids.txt
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { parseArgs } from "node:util";

/** What one run printed after "GRPC_LOAD_RESULT ". */
export interface GrpcLoadResult {
  requests: number;
  errors: number;
  /** Answers by grpc-status ("none" = no status: the stream was reset or the connection failed). */
  statuses: Record<string, number>;
  /** Up to 3 distinct "status message" pairs of failed calls. */
  errorSamples: string[];
  /** From the first request to the last answer. */
  durationUs: number;
  p50Us: number;
  p99Us: number;
  /** Lines of `--ids` used (with --ids-once, the next run starts after them). */
  idsUsed: number;
  /** True when --ids-once ran out of ids before the time was up. */
  exhausted: boolean;
  /** CPU of this process during the load (user + system), us. */
  cpuUs: number;
}

/** One piece of a field template: literal text or a placeholder. */
type Piece = string | { placeholder: "tag" | "n" | "id" };

/** Holds a parsed `--field`: its protobuf key (wire type 2) and its template. */
interface Field {
  key: Buffer;
  pieces: Piece[];
}

/** Encodes an unsigned integer as a protobuf varint. */
function varint(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(varintSize(value));
  writeVarint(bytes, 0, value);
  return bytes;
}

function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value >>>= 7;
    size += 1;
  }
  return size;
}

/** Writes a varint at `at`; returns the offset after it. */
function writeVarint(buffer: Buffer, at: number, value: number): number {
  while (value > 0x7f) {
    buffer[at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buffer[at++] = value;
  return at;
}

function parseField(spec: string): Field {
  const match = /^(\d+)=(.*)$/s.exec(spec);
  if (!match) throw new Error(`--field must be <number>=<template>, got ${spec}`);
  const pieces: Piece[] = [];
  for (const part of match[2]!.split(/(\{tag\}|\{n\}|\{id\})/)) {
    if (part === "") continue;
    const placeholder = /^\{(tag|n|id)\}$/.exec(part)?.[1] as "tag" | "n" | "id" | undefined;
    pieces.push(placeholder ? { placeholder } : part);
  }
  return { key: varint((Number(match[1]) << 3) | 2), pieces };
}

/** Builds request bodies: the gRPC frame prefix, the constant fields, then each field's string. */
function requestEncoder(fixed: Buffer, fields: Field[], tag: string, nextId: () => string | null): (n: number) => Buffer | null {
  const values = new Array<string>(fields.length);
  const lengths = new Array<number>(fields.length);
  return (n) => {
    let id: string | null | undefined;
    let size = 5 + fixed.length;
    for (let i = 0; i < fields.length; i += 1) {
      const field = fields[i]!;
      let value = "";
      for (const piece of field.pieces) {
        if (typeof piece === "string") value += piece;
        else if (piece.placeholder === "tag") value += tag;
        else if (piece.placeholder === "n") value += n;
        else {
          id ??= nextId();
          if (id === null) return null;
          value += id;
        }
      }
      const length = Buffer.byteLength(value);
      values[i] = value;
      lengths[i] = length;
      size += field.key.length + varintSize(length) + length;
    }
    const body = Buffer.allocUnsafe(size);
    body[0] = 0; // not compressed
    body.writeUInt32BE(size - 5, 1);
    let at = 5 + fixed.copy(body, 5);
    for (let i = 0; i < fields.length; i += 1) {
      at += fields[i]!.key.copy(body, at);
      at = writeVarint(body, at, lengths[i]!);
      at += body.write(values[i]!, at);
    }
    return body;
  };
}

/** Returns the next id: round-robin from `from`, or each at most once (null when they ran out). */
function idSource(ids: string[], from: number, once: boolean): { next: () => string | null; used: () => number } {
  let taken = 0;
  return {
    next() {
      if (ids.length === 0) throw new Error("{id} in a field needs --ids");
      if (once && from + taken >= ids.length) return null;
      return ids[(from + taken++) % ids.length]!;
    },
    used: () => taken,
  };
}

function percentileUs(sorted: Float64Array, q: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Holds the tallies of a run. */
interface Tally {
  requests: number;
  errors: number;
  statuses: Map<string, number>;
  errorSamples: Set<string>;
  latenciesUs: number[];
}

function record(tally: Tally, status: string, message: string, latencyUs: number): void {
  tally.requests += 1;
  tally.latenciesUs.push(latencyUs);
  tally.statuses.set(status, (tally.statuses.get(status) ?? 0) + 1);
  if (status === "0") return;
  tally.errors += 1;
  if (tally.errorSamples.size < 3) tally.errorSamples.add(`${status} ${message}`.trim());
}

/**
 * Runs the load: `streams` loops of one call at a time over `connections` connections,
 * until `seconds` have passed or the bodies ran out; resolves when the calls
 * in flight have finished (or after `drainMs`, counting them as failed).
 */
async function run(options: {
  url: URL;
  seconds: number;
  streams: number;
  connections: number;
  encode: (n: number) => Buffer | null;
  drainMs: number;
}): Promise<{ tally: Tally; durationUs: number; exhausted: boolean }> {
  const sessions = await Promise.all(
    Array.from({ length: options.connections }, async () => {
      const session = http2.connect(options.url.origin, {
        createConnection: () => net.connect({ host: options.url.hostname, port: Number(options.url.port), noDelay: true }),
      });
      session.on("error", () => {}); // surfaces as failed streams
      await new Promise<void>((resolve, reject) => {
        session.once("remoteSettings", () => resolve());
        session.once("error", reject);
      });
      return session;
    }),
  );
  const headers = { ":method": "POST", ":path": options.url.pathname, "content-type": "application/grpc", te: "trailers" };
  const tally: Tally = { requests: 0, errors: 0, statuses: new Map(), errorSamples: new Set(), latenciesUs: [] };
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  let counter = 0;
  let exhausted = false;
  let lastAnswer = started;
  let inFlight = 0;

  return new Promise((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      for (let i = 0; i < inFlight; i += 1) record(tally, "none", "still in flight after the drain time", options.drainMs * 1000);
      for (const session of sessions) session.destroy();
      resolve({ tally, durationUs: (lastAnswer - started) * 1000, exhausted });
    };
    const call = (loop: number) => {
      if (finished) return;
      const body = performance.now() < deadline && !exhausted ? options.encode(++counter) : null;
      if (body === null) {
        exhausted ||= performance.now() < deadline;
        if (inFlight === 0) finish();
        return;
      }
      inFlight += 1;
      const sent = performance.now();
      let status = "none";
      let message = "";
      const stream = sessions[loop % sessions.length]!.request(headers, { endStream: false });
      const readStatus = (fields: http2.IncomingHttpHeaders) => {
        if (fields["grpc-status"] !== undefined) status = String(fields["grpc-status"]);
        if (fields["grpc-message"] !== undefined) message = decodeURIComponent(String(fields["grpc-message"]));
      };
      stream.on("response", readStatus);
      stream.on("trailers", readStatus);
      stream.on("error", (error) => (message ||= error.message));
      stream.on("close", () => {
        inFlight -= 1;
        lastAnswer = performance.now();
        if (status === "0" && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) status = "none";
        record(tally, status, message, (lastAnswer - sent) * 1000);
        call(loop);
      });
      stream.resume(); // answers are counted, not decoded
      stream.end(body);
    };
    for (let i = 0; i < options.streams; i += 1) call(i);
    setTimeout(finish, options.seconds * 1000 + options.drainMs).unref();
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      seconds: { type: "string", default: "10" },
      streams: { type: "string", default: "50" },
      connections: { type: "string", default: "1" },
      tag: { type: "string", default: "t" },
      fixed: { type: "string", default: "" },
      field: { type: "string", multiple: true, default: [] },
      ids: { type: "string" },
      "ids-from": { type: "string", default: "0" },
      "ids-once": { type: "boolean", default: false },
    },
  });
  if (values.url === undefined) throw new Error("--url is required");
  const ids = values.ids === undefined ? [] : readFileSync(values.ids, "utf8").split("\n").filter((line) => line !== "");
  const source = idSource(ids, Number(values["ids-from"]), values["ids-once"]);
  const encode = requestEncoder(Buffer.from(values.fixed, "hex"), values.field.map(parseField), values.tag, source.next);
  const cpu = process.cpuUsage();
  const { tally, durationUs, exhausted } = await run({
    url: new URL(values.url),
    seconds: Number(values.seconds),
    streams: Number(values.streams),
    connections: Number(values.connections),
    encode,
    drainMs: 10_000,
  });
  const used = process.cpuUsage(cpu);
  const sorted = Float64Array.from(tally.latenciesUs).sort();
  const result: GrpcLoadResult = {
    requests: tally.requests,
    errors: tally.errors,
    statuses: Object.fromEntries(tally.statuses),
    errorSamples: [...tally.errorSamples],
    durationUs: Math.round(durationUs),
    p50Us: percentileUs(sorted, 0.5),
    p99Us: percentileUs(sorted, 0.99),
    idsUsed: source.used(),
    exhausted,
    cpuUs: used.user + used.system,
  };
  process.stdout.write(`GRPC_LOAD_RESULT ${JSON.stringify(result)}\n`);
}

try {
  await main();
  process.exit(0);
} catch (error) {
  process.stderr.write(`grpc-load failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
