/**
 * Fuzzing from the contract (issue 13): requests drawn from the protovalidate
 * rules of proto/sessionmanager/v1 (requests.ts) and raw random bodies, sent
 * to a real server over gRPC (HTTP/2), Connect JSON (HTTP/1.1) and gRPC-Web
 * (HTTP/1.1). Properties:
 *   - never INTERNAL or UNKNOWN for a request that decodes;
 *   - a request with an invalid field gets INVALID_ARGUMENT naming only
 *     invalid fields (buf.validate.Violations, or ErrorInfo metadata.field);
 *   - a valid request never gets INVALID_ARGUMENT, except the documented
 *     semantic reasons (RESERVED_EVENT_TYPE, INVALID_PAGE_TOKEN, INVALID_CURSOR);
 *   - afterwards the database holds the invariants (one open session per
 *     user, seq dense per session, every state change with its lifecycle
 *     event, every hash chain verifies: src/service/audit.ts, as `verify`).
 *
 * FUZZ_REQUESTS (default 5,000) is the number of requests, counted across
 * all three protocols; FUZZ_SEED replays a run.
 */
import http2 from "node:http2";
import { create, fromBinary, fromJsonString, toBinary, type DescMethod } from "@bufbuild/protobuf";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { verifyChains } from "../../src/service/audit.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import type { Protocol } from "./contract-rules.js";
import { invalidFields, jsonCarries, tooDeepForBinary, undecodableFields, requestCaseArbitrary, requestInit, type Pools, type RequestCase } from "./requests.js";

const TOTAL = Number(process.env.FUZZ_REQUESTS ?? 5_000);
/** A tenth of the budget goes to raw bodies, a tenth to the same request over all three protocols, the rest to requests drawn from the contract. */
const RAW = Math.ceil(TOTAL / 10);
const ALIKE_CASES = Math.ceil(TOTAL / 30);
const TYPED = TOTAL - RAW - 3 * ALIKE_CASES;
/** Requests in flight at once (one property run sends this many). */
const BATCH = 8;
/** The seed of every property in the run (printed with the outcomes); FUZZ_SEED replays a run. */
const SEED = process.env.FUZZ_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED);
const PROTOCOLS: Protocol[] = ["grpc", "connect", "grpc-web"];

type SessionClient = Client<typeof SessionManagerService>;
type AnyCall = (request: unknown, options: { signal: AbortSignal }) => unknown;

let db: IsolatedDatabase;
let app: App;
let baseUrl: string;
const clients = {} as Record<Protocol, SessionClient>;
const pools: Pools = { users: [], sessions: [], recordIds: [], pageTokens: [], cursors: [] };
/** Outcomes by protocol and code name, printed at the end. */
const outcomes = new Map<string, number>();

function count(protocol: string, outcome: string): void {
  const key = `${protocol} ${outcome}`;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
}

beforeAll(async () => {
  db = await createIsolatedDatabase("sm_fuzz");
  app = await startTestApp({ databaseUrl: db.url });
  baseUrl = `http://127.0.0.1:${app.port}`;
  const transports: Record<Protocol, Transport> = {
    grpc: createGrpcTransport({ baseUrl }),
    connect: createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    "grpc-web": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  };
  for (const protocol of PROTOCOLS) clients[protocol] = createClient(SessionManagerService, transports[protocol]);
  const run = uniqueId("fz");
  pools.users = Array.from({ length: 16 }, (_, i) => `${run}-u${i}`);
  pools.recordIds = Array.from({ length: 24 }, (_, i) => `${run}-r${i}`);
  for (const userId of pools.users.slice(0, 8)) {
    const { session } = await clients.grpc.startSession({ recordId: uniqueId("seed"), userId });
    pools.sessions.push(session!.sessionId);
  }
});

afterAll(async () => {
  await app?.stop();
  await db?.drop();
});

/** Remembers ids, tokens and cursors from a response, so later requests can reuse them. */
function harvest(response: unknown): void {
  const seen = new Set<unknown>();
  const walk = (value: unknown) => {
    if (value === null || typeof value !== "object" || seen.has(value)) return;
    seen.add(value);
    const record = value as Record<string, unknown>;
    if (typeof record.sessionId === "string" && record.sessionId !== "" && pools.sessions.length < 400 && !pools.sessions.includes(record.sessionId)) pools.sessions.push(record.sessionId);
    if (typeof record.nextPageToken === "string" && record.nextPageToken !== "" && pools.pageTokens.length < 200) pools.pageTokens.push(record.nextPageToken);
    if (typeof record.cursor === "string" && record.cursor !== "" && pools.cursors.length < 200) pools.cursors.push(record.cursor);
    for (const child of Object.values(record)) if (typeof child === "object") walk(child);
  };
  walk(response);
}

/** Sends one case; resolves with the error (null on success). A stream is read to its first frame, then cancelled. */
async function send(request: RequestCase, protocol: Protocol): Promise<ConnectError | null> {
  const client = clients[protocol] as unknown as Record<string, AnyCall>;
  const message = create(request.method.input, requestInit(request) as never);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error("no answer within 20 s")), 20_000);
  try {
    if (request.method.methodKind === "server_streaming") {
      const stream = client[request.method.localName]!(message, { signal: abort.signal }) as AsyncIterable<unknown>;
      for await (const frame of stream) {
        harvest(frame);
        break;
      }
    } else {
      harvest(await (client[request.method.localName]!(message, { signal: abort.signal }) as Promise<unknown>));
    }
    return null;
  } catch (error) {
    return ConnectError.from(error);
  } finally {
    clearTimeout(timer);
  }
}

/** Names the fields an INVALID_ARGUMENT answer blames: Violations' first path elements, and ErrorInfo metadata.field's first segment. */
function blamedFields(error: ConnectError): string[] {
  const violations = error.findDetails(ViolationsSchema).flatMap((detail) => detail.violations);
  const fromViolations = violations.map((violation) => violation.field?.elements[0]?.fieldName ?? "<no field>");
  const fromInfo = error.findDetails(ErrorInfoSchema).flatMap((info) => (info.metadata.field ? [info.metadata.field.split(".")[0]!] : []));
  // protobuf-es refuses some JSON before any rule runs (e.g. a string with a lone surrogate) and names the field in its message.
  const decoder = /^cannot decode field [\w.]+\.(\w+) from JSON/.exec(error.rawMessage);
  return [...fromViolations, ...fromInfo, ...(decoder ? [decoder[1]!] : [])];
}

/** The codes a valid request may get: its documented errors (the proto's per-RPC lists). */
const VALID_CODES = new Set([Code.NotFound, Code.FailedPrecondition, Code.AlreadyExists]);

/** Checks one answer against the contract; returns a description of the breach, or null. */
function breach(request: RequestCase, protocol: Protocol, error: ConnectError | null): string | null {
  const undecodable = undecodableFields(request, protocol);
  const invalid = [...new Set([...invalidFields(request, protocol), ...undecodable])];
  const reasons = error?.findDetails(ErrorInfoSchema).map((info) => info.reason) ?? [];
  // Decided upstream (README, Errors, "parse binary"): JSON nested past the decoder's 100 message levels never reaches a
  // handler; connect-node says "parse binary: ... maximum recursion depth", grpc-js "Error deserializing request".
  const upstreamMessage = /^parse binary: .*maximum recursion depth|^Error deserializing request$/;
  const upstream = error?.code === Code.Internal && upstreamMessage.test(error.rawMessage) && tooDeepForBinary(request, protocol);
  if (upstream) return null;
  if (error !== null && (error.code === Code.Internal || error.code === Code.Unknown)) return `${Code[error.code]}: ${error.rawMessage}`;
  if (invalid.length > 0) {
    if (error?.code !== Code.InvalidArgument) return `invalid ${invalid.join(", ")} answered ${error === null ? "OK" : Code[error.code]}`;
    const expected = ["INVALID_REQUEST", ...request.allowedInvalidReasons];
    if (undecodable.length === 0 && !(reasons.length === 1 && expected.includes(reasons[0]!))) return `invalid ${invalid.join(", ")} answered reason ${reasons.join(",")}`;
    const blamed = blamedFields(error);
    if (blamed.length === 0) return `INVALID_ARGUMENT without violations or field: ${error.rawMessage}`;
    const wrong = blamed.filter((name) => !invalid.includes(name));
    if (wrong.length > 0) return `blamed valid field(s) ${wrong.join(", ")} (invalid: ${invalid.join(", ")}): ${error.rawMessage}`;
    return null;
  }
  if (error === null || VALID_CODES.has(error.code)) return null;
  if (error.code === Code.InvalidArgument && reasons.length === 1 && request.allowedInvalidReasons.includes(reasons[0]!)) return null;
  return `valid request answered ${Code[error.code]} ${reasons.join(",")}: ${error.rawMessage}`;
}

/** Describes a case for a failure message (bigints and long strings shortened). */
function describeCase(request: RequestCase, protocol: Protocol): string {
  const text = JSON.stringify(requestInit(request), (_k, v: unknown) =>
    typeof v === "bigint" ? `${v}n` : typeof v === "string" && v.length > 80 ? `${v.slice(0, 80)}...(${v.length})` : v,
  );
  return `${protocol} ${request.method.name} ${text.length > 2000 ? `${text.slice(0, 2000)}...` : text}`;
}

let sentTyped = 0;

/** Reports a failed property by its assertion and seed only (the drawn values are in the assertion, shortened). */
function reporter<T>(details: fc.RunDetails<T>): void {
  if (!details.failed) return;
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  throw new Error(`property failed (FUZZ_SEED=${details.seed}, path ${details.counterexamplePath}, after ${details.numRuns} runs):\n${cause}`);
}

describe("fuzzing from the contract", () => {
  it(`answers ${TYPED} requests drawn from the protovalidate rules as the contract says, on every protocol`, { timeout: 600_000 }, async () => {
    const batch = fc.array(fc.tuple(requestCaseArbitrary(pools), fc.constantFrom(...PROTOCOLS)), { minLength: BATCH, maxLength: BATCH });
    await fc.assert(
      fc.asyncProperty(batch, async (cases) => {
        const answers = await Promise.all(
          cases.map(async ([request, drawnProtocol]) => {
            // Values protobuf JSON cannot write travel over the binary protocols only.
            const protocol: Protocol = drawnProtocol === "connect" && !jsonCarries(request) ? "grpc-web" : drawnProtocol;
            const error = await send(request, protocol);
            sentTyped += 1;
            count(protocol, error === null ? "OK" : Code[error.code]!);
            return { request, protocol, problem: breach(request, protocol, error) };
          }),
        );
        const failures = answers.filter((answer) => answer.problem !== null);
        if (failures.length > 0) throw new Error(failures.map((f) => `${f.problem}\n    ${describeCase(f.request, f.protocol)}`).join("\n"));
      }),
      { numRuns: Math.ceil(TYPED / BATCH), seed: SEED, endOnFailure: process.env.FUZZ_SHRINK !== "on", reporter },
    );
  });

  it(`answers ${ALIKE_CASES} requests that write nothing alike over gRPC, Connect JSON and gRPC-Web`, { timeout: 600_000 }, async () => {
    // Requests that cannot change state (reads, and requests with an invalid field) and mean the
    // same on every protocol (JSON can carry them, no lone surrogates, not too deep for a binary decoder).
    const READS = new Set(["GetSession", "ListSessions", "ListSessionEvents"]);
    const alike = requestCaseArbitrary(pools).filter((request) => {
      const invalid = PROTOCOLS.map((protocol) => invalidFields(request, protocol).join(","));
      const sameMeaning = jsonCarries(request) && PROTOCOLS.every((p) => undecodableFields(request, p).length === 0 && !tooDeepForBinary(request, p)) && new Set(invalid).size === 1;
      return sameMeaning && (READS.has(request.method.name) || invalid[0] !== "") && request.method.methodKind === "unary";
    });
    await fc.assert(
      fc.asyncProperty(fc.array(alike, { minLength: BATCH, maxLength: BATCH }), async (cases) => {
        const problems = await Promise.all(
          cases.map(async (request) => {
            const answers = await Promise.all(
              PROTOCOLS.map(async (protocol) => {
                const error = await send(request, protocol);
                count(`alike ${protocol}`, error === null ? "OK" : Code[error.code]!);
                return `${error === null ? "OK" : Code[error.code]} ${error?.findDetails(ErrorInfoSchema).map((i) => i.reason).join(",") ?? ""} [${error === null ? "" : blamedFields(error).sort().join(",")}]`;
              }),
            );
            return new Set(answers).size === 1 ? null : `${PROTOCOLS.map((p, i) => `${p}: ${answers[i]}`).join(" | ")}\n    ${describeCase(request, "grpc")}`;
          }),
        );
        const failures = problems.filter((problem) => problem !== null);
        if (failures.length > 0) throw new Error(failures.join("\n"));
      }),
      { numRuns: Math.ceil(ALIKE_CASES / BATCH), seed: SEED, reporter },
    );
  });

  it(`answers ${RAW} raw random bodies without INTERNAL or UNKNOWN for any body that decodes`, { timeout: 600_000 }, async () => {
    const methods = SessionManagerService.methods;
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.jsonValue().map((value) => Buffer.from(JSON.stringify(value))),
      fc.string({ unit: "binary", maxLength: 200 }).map((text) => Buffer.from(text)),
      // A valid message with its bytes flipped, cut or extended.
      fc.tuple(fc.constantFrom(...methods), fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.nat()).map(([method, noise, at]) => {
        const bytes = toBinary(method.input, create(method.input, exampleInit(method)));
        const cut = at % (bytes.length + 1);
        return Buffer.concat([bytes.subarray(0, cut), noise, bytes.subarray(cut)]);
      }),
    );
    const raw = fc.record({ method: fc.constantFrom(...methods), protocol: fc.constantFrom<RawProtocol>("grpc", "connect-json", "connect-proto", "grpc-web"), body, flags: fc.constantFrom(0, 0, 0, 1, 2, 0x80) });
    const session = http2.connect(baseUrl);
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(raw, { minLength: BATCH, maxLength: BATCH }), async (cases) => {
          const answers = await Promise.all(cases.map(async (c) => ({ c, answer: await sendRaw(session, c.method, c.protocol, c.body, c.flags) })));
          const failures = answers.filter(({ c, answer }) => {
            count(`raw ${c.protocol}`, answer.code);
            if (answer.code !== "INTERNAL" && answer.code !== "UNKNOWN") return false;
            // Documented (README, Errors): a compressed envelope without an encoding, and binary bytes that do not decode as the message, are INTERNAL upstream.
            const enveloped = c.protocol === "grpc" || c.protocol === "grpc-web" || c.method.methodKind === "server_streaming";
            const documented = (enveloped && (c.flags & 1) === 1) || (c.protocol !== "connect-json" && !decodes(c.method, c.protocol, c.body));
            return !documented;
          });
          if (failures.length > 0) {
            throw new Error(failures.map(({ c, answer }) => `${c.protocol} ${c.method.name} flags=${c.flags} body=${Buffer.from(c.body).toString("base64")}: ${answer.code} ${answer.message}`).join("\n"));
          }
        }),
        { numRuns: Math.ceil(RAW / BATCH), seed: SEED, reporter },
      );
    } finally {
      session.close();
    }
  });

  it("leaves the invariants holding: one open session per user, seq dense per session, every state change with its event, every hash chain verifies", async () => {
    const doubleOpen = await db.sql`
      select user_id
      from sessions
      where state in ('active', 'paused')
      group by user_id
      having count(*) > 1
    `;
    expect(doubleOpen).toEqual([]);
    const gaps = await db.sql`
      select s.session_id, s.last_seq, count(e.seq)::int as events, min(e.seq)::int as first, max(e.seq)::int as last
      from sessions s
      left join session_events e on e.user_id = s.user_id and e.session_id = s.session_id
      group by s.session_id, s.last_seq
      having count(e.seq) <> s.last_seq or min(e.seq) <> 1 or max(e.seq) <> s.last_seq
    `;
    expect(gaps).toEqual([]);
    // Every state change has its event: seq 1 is session.started, an ENDED session has exactly one
    // session.ended (an open one none), and the latest of session.paused/session.resumed matches PAUSED/ACTIVE.
    const mismatched = await db.sql`
      select s.session_id, s.state, first.type as first_type, ends.n as ended_events, last_pause.type as last_pause_type
      from sessions s
      join session_events first on first.user_id = s.user_id and first.session_id = s.session_id and first.seq = 1
      cross join lateral (
        select count(*)::int as n
        from session_events e
        where e.user_id = s.user_id and e.session_id = s.session_id and e.type = 'session.ended'
      ) ends
      left join lateral (
        select e.type
        from session_events e
        where e.user_id = s.user_id and e.session_id = s.session_id and e.type in ('session.paused', 'session.resumed')
        order by e.seq desc
        limit 1
      ) last_pause on true
      where first.type <> 'session.started'
        or ends.n <> (case when s.state = 'ended' then 1 else 0 end)
        or (s.state = 'paused' and last_pause.type is distinct from 'session.paused')
        or (s.state = 'active' and last_pause.type = 'session.paused')
    `;
    expect(mismatched).toEqual([]);
    const report = await verifyChains(db.sql, { sessionId: null, userId: null });
    expect(report.broken).toBeNull();
    expect(report.sessions).toBeGreaterThan(0);
    const lines = [...outcomes.entries()].sort().map(([key, n]) => `  ${key}: ${n}`);
    const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
    console.log(`fuzz (FUZZ_SEED=${SEED}): ${total} requests (${sentTyped} from the contract), ${report.sessions} sessions and ${report.events} events verified\n${lines.join("\n")}`);
  });
});

type RawProtocol = "grpc" | "connect-json" | "connect-proto" | "grpc-web";

/** A minimal valid request of each method, for the mutated-message bodies. */
function exampleInit(method: DescMethod): Record<string, unknown> {
  const sessionId = pools.sessions[0] ?? "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";
  const init: Record<string, unknown> = {};
  for (const field of method.input.fields) {
    if (field.name === "session_id") init[field.localName] = sessionId;
    else if (field.name === "record_id") init[field.localName] = uniqueId("raw");
    else if (field.name === "user_id") init[field.localName] = pools.users[0];
    else if (field.name === "type") init[field.localName] = "care.raw";
    else if (field.name === "source") init[field.localName] = "fuzz";
  }
  return init;
}

/** Tells whether the body decodes as the method's request on this protocol (well-formed input). */
function decodes(method: DescMethod, protocol: RawProtocol, body: Uint8Array): boolean {
  try {
    if (protocol === "connect-json") fromJsonString(method.input, Buffer.from(body).toString("utf8"));
    else fromBinary(method.input, body);
    return true;
  } catch {
    return false;
  }
}

function envelope(flags: number, body: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(flags, 0);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

/** Posts a raw body and returns the status as a gRPC code name with its message. Connect unary sends the body as is; the others wrap it in one envelope. */
async function sendRaw(session: http2.ClientHttp2Session, method: DescMethod, protocol: RawProtocol, body: Uint8Array, flags: number): Promise<{ code: string; message: string }> {
  const path = `/${SessionManagerService.typeName}/${method.name}`;
  const streaming = method.methodKind === "server_streaming";
  if (protocol === "grpc") return sendGrpc(session, path, envelope(flags, body));
  const contentType =
    protocol === "grpc-web" ? "application/grpc-web+proto" : streaming ? (protocol === "connect-json" ? "application/connect+json" : "application/connect+proto") : protocol === "connect-json" ? "application/json" : "application/proto";
  const payload = protocol === "grpc-web" || streaming ? envelope(flags, body) : body;
  const response = await fetch(`${baseUrl}${path}`, { method: "POST", headers: { "content-type": contentType }, body: payload, signal: AbortSignal.timeout(20_000) });
  const bytes = Buffer.from(await readSome(response));
  if (protocol === "grpc-web") return grpcWebStatus(response, bytes);
  if (!streaming) {
    if (response.ok) return { code: "OK", message: "" };
    const error = JSON.parse(bytes.toString("utf8")) as { code: string; message?: string };
    return { code: error.code.toUpperCase(), message: error.message ?? "" };
  }
  // Connect streaming: the end-of-stream message (flag 2) carries the error, if any.
  const end = lastEnvelope(bytes, 0x02);
  if (end === null) return { code: response.ok ? "OK" : `HTTP ${response.status}`, message: "" };
  const parsed = JSON.parse(end.toString("utf8")) as { error?: { code: string; message?: string } };
  return parsed.error ? { code: parsed.error.code.toUpperCase(), message: parsed.error.message ?? "" } : { code: "OK", message: "" };
}

/** Reads a response body, but at most the first frames of a stream (a Watch that starts does not end by itself). */
async function readSome(response: Response): Promise<Uint8Array> {
  const reader = response.body!.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size > 0 && response.ok && /connect\+|grpc-web/.test(response.headers.get("content-type") ?? "")) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(chunks);
}

function lastEnvelope(bytes: Buffer, flag: number): Buffer | null {
  let found: Buffer | null = null;
  for (let at = 0; at + 5 <= bytes.length; ) {
    const length = bytes.readUInt32BE(at + 1);
    if ((bytes[at]! & flag) === flag) found = bytes.subarray(at + 5, at + 5 + length);
    at += 5 + length;
  }
  return found;
}

const GRPC_CODES = Object.fromEntries(Object.entries(Code).filter(([, v]) => typeof v === "number").map(([k, v]) => [v, k.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()]));

function grpcWebStatus(response: Response, bytes: Buffer): { code: string; message: string } {
  const header = response.headers.get("grpc-status");
  if (header !== null) return { code: GRPC_CODES[Number(header)] ?? header, message: response.headers.get("grpc-message") ?? "" };
  const trailer = lastEnvelope(bytes, 0x80);
  if (trailer === null) return { code: response.ok ? "OK" : `HTTP ${response.status}`, message: "" };
  const status = /grpc-status:\s*(\d+)/i.exec(trailer.toString("latin1"));
  const message = /grpc-message:\s*(.*)/i.exec(trailer.toString("latin1"));
  return { code: status ? (GRPC_CODES[Number(status[1])] ?? status[1]!) : "OK", message: decodeURIComponent(message?.[1]?.trim() ?? "") };
}

/** Sends one gRPC call over an HTTP/2 session and reads its status from the trailers (or trailers-only headers); a stream that starts is cancelled. */
function sendGrpc(session: http2.ClientHttp2Session, path: string, payload: Buffer): Promise<{ code: string; message: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const timer = setTimeout(() => (stream.close(http2.constants.NGHTTP2_CANCEL), reject(new Error(`no gRPC answer for ${path}`))), 20_000);
    const finish = (headers: http2.IncomingHttpHeaders) => {
      clearTimeout(timer);
      const status = headers["grpc-status"];
      resolve({ code: GRPC_CODES[Number(status)] ?? String(status), message: decodeURIComponent(String(headers["grpc-message"] ?? "")) });
    };
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) finish(headers);
    });
    stream.on("data", () => {
      // A started stream (a Watch) answered OK: cancel it.
      clearTimeout(timer);
      resolve({ code: "OK", message: "" });
      stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.on("trailers", finish);
    stream.on("error", (error) => (clearTimeout(timer), reject(error)));
    stream.end(payload);
  });
}
