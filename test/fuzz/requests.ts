/**
 * Request cases for every RPC of SessionManagerService, drawn field by field
 * from the contract (contract-rules.ts, json-values.ts), with the values that
 * make a request reach real state: session ids, users, record ids, page
 * tokens and cursors the run has seen.
 */
import type { DescField, DescMethod } from "@bufbuild/protobuf";
import fc from "fast-check";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { fieldRules, jsonRefuses, ruleArbitrary, type Drawn, type Protocol } from "./contract-rules.js";
import { structArbitrary } from "./json-values.js";

/** What the run has seen so far; semantic arbitraries draw from it when a value is generated. */
export interface Pools {
  users: string[];
  sessions: string[];
  recordIds: string[];
  pageTokens: string[];
  cursors: string[];
}

/** One request: its method, each field's drawn value, and the documented reasons a valid request may still get INVALID_ARGUMENT with. */
export interface RequestCase {
  method: DescMethod;
  fields: Record<string, Drawn>;
  /** Proto names of the fields, by localName (Violations name fields by proto name). */
  protoNames: Record<string, string>;
  /** Reasons a request whose every field is valid may still be refused with (e.g. INVALID_PAGE_TOKEN for a forged token). */
  allowedInvalidReasons: string[];
}

/** The byte limits of the proto comments: StartSessionRequest.metadata 16 KiB, AppendSessionEventRequest.payload 64 KiB. */
const STRUCT_LIMITS: Record<string, number> = { metadata: 16 * 1024, payload: 64 * 1024 };

/** The CEL rules of UpdateSessionRequest this file draws by hand; a new or renamed one fails the run until it is drawn too. */
const HAND_DRAWN_CEL = new Set(["session.session_id", "update_mask.paths"]);

function pick<T>(pool: () => T[], fallback: T): fc.Arbitrary<T> {
  return fc.nat().map((i) => {
    const items = pool();
    return items.length === 0 ? fallback : items[i % items.length]!;
  });
}

const SESSION_ID = /^sess_[0-9A-HJKMNP-TV-Z]{26}$/;
const b64 = (text: string) => Buffer.from(text).toString("base64url");

/** Forged page tokens: base64url JSON in the token's own shape with hostile positions, other JSON, and junk. */
function forgedPageTokens(pools: Pools): fc.Arbitrary<string> {
  const position = fc.oneof(
    fc.record({ q: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(-1, 2 ** 53, 1e300, "1", null)) }),
    fc.record({ t: fc.oneof(fc.date({ noInvalidDate: false }).map((d) => (Number.isNaN(d.getTime()) ? "x" : d.toISOString())), fc.string()), s: fc.oneof(fc.string(), pick(() => pools.sessions, "sess_")) }),
    fc.jsonValue(),
  );
  const filters = fc.oneof(
    fc.constant({ state: null, userId: null }),
    pick(() => pools.users, "u").map((userId) => ({ state: null, userId })),
    pick(() => pools.sessions, "s").map((sessionId) => ({ sessionId })),
    fc.jsonValue(),
  );
  return fc.oneof(
    fc.record({ v: fc.constantFrom(1, 2, "1"), f: filters, p: position }).map((token) => b64(JSON.stringify(token))),
    fc.jsonValue().map((value) => b64(JSON.stringify(value))),
    fc.string({ unit: "binary", maxLength: 80 }),
    fc.base64String({ maxLength: 120 }),
  );
}

/** Forged cursors: the v1 format with values at and beyond int8, other versions, and junk. */
function forgedCursors(): fc.Arbitrary<string> {
  const big = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n }), fc.constantFrom(0n, 1n, 2n ** 63n - 1n, 2n ** 63n, 10n ** 19n));
  return fc.oneof(
    fc.tuple(fc.constantFrom("1", "0", "2", ""), big, big).map(([v, tx, id]) => b64(`${v}:${tx}:${id}`)),
    fc.tuple(big, big).map(([tx, id]) => b64(`1:0${tx}:${id}`)),
    fc.string({ unit: "binary", maxLength: 64 }),
    fc.base64String({ maxLength: 100 }),
  );
}

/** Values that make each named field reach real state; they are drawn next to the rule-derived values. */
function semanticStrings(field: DescField, pools: Pools): fc.Arbitrary<string>[] {
  switch (field.name) {
    case "session_id":
      return [fc.oneof({ weight: 4, arbitrary: pick(() => pools.sessions, "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV") }, { weight: 1, arbitrary: fc.stringMatching(SESSION_ID) })];
    case "user_id":
      return [pick(() => pools.users, "fuzz-user")];
    case "record_id":
      return [pick(() => pools.recordIds, "fuzz-record"), fc.uuid()];
    case "page_token":
      return [fc.constant(""), pick(() => pools.pageTokens, ""), forgedPageTokens(pools)];
    case "after_cursor":
      return [fc.constant(""), pick(() => pools.cursors, ""), forgedCursors()];
    case "type":
      return [fc.constantFrom("care.input.received", "care.note", "session.started", "session.x", "sessionx", "care.*")];
    default:
      return [];
  }
}

/** Draws UpdateSessionRequest.session (required; CEL "session.session_id") and the metadata it carries. */
function updateSessionArbitrary(pools: Pools): fc.Arbitrary<Drawn> {
  const id = fc.oneof(pick(() => pools.sessions, "sess_"), fc.stringMatching(SESSION_ID), fc.string({ unit: "binary", maxLength: 40 }), fc.constant(""));
  const session = fc.record({ sessionId: id, metadata: structArbitrary(STRUCT_LIMITS.metadata!), isTrainingData: fc.boolean() });
  return fc.option(session, { freq: 12, nil: undefined }).map((drawn) =>
    drawn === undefined
      ? { value: undefined, valid: () => false }
      : {
          value: { sessionId: drawn.sessionId, metadata: drawn.metadata.value, isTrainingData: drawn.isTrainingData },
          valid: (protocol: Protocol) => SESSION_ID.test(drawn.sessionId) && drawn.metadata.valid(protocol),
          binaryOnly: drawn.metadata.binaryOnly ?? false,
          undecodable: (protocol: Protocol) => jsonRefuses(drawn.sessionId, protocol),
          tooDeepForBinary: drawn.metadata.tooDeepForBinary,
          metadata: drawn.metadata,
        },
  );
}

/** Draws UpdateSessionRequest.update_mask (required; CEL "update_mask.paths": one or both of metadata, is_training_data, no repeats). */
function updateMaskArbitrary(): fc.Arbitrary<Drawn> {
  const path = fc.constantFrom("metadata", "is_training_data", "session_id", "metadata.k", "", "isTrainingData", "METADATA", "user_id");
  return fc.option(fc.array(path, { maxLength: 3 }), { freq: 12, nil: undefined }).map((paths) =>
    paths === undefined
      ? { value: undefined, valid: () => false }
      : {
          value: { paths },
          valid: () => paths.length > 0 && paths.every((p) => p === "metadata" || p === "is_training_data") && new Set(paths).size === paths.length,
          // protobuf JSON writes a mask as lowerCamelCase paths joined by commas: only snake_case paths survive the trip.
          binaryOnly: paths.some((p) => !/^[a-z]+(_[a-z]+)*(\.[a-z]+(_[a-z]+)*)*$/.test(p)),
        },
  );
}

/** Builds the arbitrary of one method's request cases; throws for a field it cannot draw, so a new field fails the run until it is fuzzed. */
function caseArbitrary(method: DescMethod, pools: Pools): fc.Arbitrary<RequestCase> {
  const fields: Record<string, fc.Arbitrary<Drawn>> = {};
  const protoNames: Record<string, string> = {};
  for (const field of method.input.fields) {
    protoNames[field.localName] = field.name;
    const cel = fieldRules(field)?.cel.map((rule) => rule.id) ?? [];
    const unknownCel = cel.filter((id) => !HAND_DRAWN_CEL.has(id));
    if (unknownCel.length > 0) throw new Error(`${method.name}.${field.name} has CEL rules ${unknownCel.join(", ")} the fuzzer does not draw: extend requests.ts`);
    if (method.name === "UpdateSession" && field.name === "session") fields[field.localName] = updateSessionArbitrary(pools);
    else if (method.name === "UpdateSession" && field.name === "update_mask") fields[field.localName] = updateMaskArbitrary();
    else if (field.fieldKind === "message" && field.message.typeName === "google.protobuf.Struct") {
      const limit = STRUCT_LIMITS[field.name];
      if (limit === undefined) throw new Error(`${method.name}.${field.name}: no documented JSON limit known to the fuzzer`);
      fields[field.localName] = structArbitrary(limit);
    } else {
      const drawn = ruleArbitrary(field, semanticStrings(field, pools));
      if (drawn === null) throw new Error(`${method.name}.${field.name}: no arbitrary for this field's rules: extend contract-rules.ts`);
      fields[field.localName] = drawn;
    }
  }
  return fc.record(fields).map((drawn) => {
    const allowed: string[] = [];
    const type = drawn.type?.value;
    // Proto: appended types "starting with "session." are reserved" (RESERVED_EVENT_TYPE); Watch filters may name them.
    if (method.name === "AppendSessionEvent" && typeof type === "string" && type.startsWith("session.")) {
      allowed.push("RESERVED_EVENT_TYPE");
      drawn.type = { ...drawn.type!, valid: () => false };
    }
    if (typeof drawn.pageToken?.value === "string" && drawn.pageToken.value !== "") allowed.push("INVALID_PAGE_TOKEN");
    if (typeof drawn.afterCursor?.value === "string" && drawn.afterCursor.value !== "") allowed.push("INVALID_CURSOR");
    // UpdateSession's metadata counts only when the mask names it (proto: "Other fields are ignored").
    const session = drawn.session as (Drawn & { metadata?: Drawn }) | undefined;
    const mask = drawn.updateMask?.value as { paths: string[] } | undefined;
    if (method.name === "UpdateSession" && session?.value !== undefined && session.metadata && !mask?.paths.includes("metadata")) {
      const id = (session.value as { sessionId: string }).sessionId;
      drawn.session = { ...session, valid: () => SESSION_ID.test(id) };
    }
    return { method, fields: drawn, protoNames, allowedInvalidReasons: allowed };
  });
}

/**
 * Draws request cases for every method of SessionManagerService, unary and
 * streaming alike: half of them with every field valid (so requests reach
 * the service's state), half as drawn (mostly with some field invalid).
 */
export function requestCaseArbitrary(pools: Pools): fc.Arbitrary<RequestCase> {
  return fc.oneof(
    ...SessionManagerService.methods.map((method) => {
      const drawn = caseArbitrary(method, pools);
      return fc.oneof(drawn, drawn.filter((request) => invalidFields(request, "grpc").length === 0 && undecodableFields(request, "connect").length === 0));
    }),
  );
}

/** Tells whether every field of the case is valid as the server receives it over `protocol`. */
export function invalidFields(request: RequestCase, protocol: Protocol): string[] {
  return Object.entries(request.fields)
    .filter(([, drawn]) => !drawn.valid(protocol))
    .map(([localName]) => request.protoNames[localName]!);
}

/** Lists the fields protobuf-es refuses to decode over `protocol` (proto names). */
export function undecodableFields(request: RequestCase, protocol: Protocol): string[] {
  return Object.entries(request.fields)
    .filter(([, drawn]) => drawn.undecodable?.(protocol) ?? false)
    .map(([localName]) => request.protoNames[localName]!);
}

/** Tells whether some field nests beyond protobuf-es's binary decoder limit over `protocol`. */
export function tooDeepForBinary(request: RequestCase, protocol: Protocol): boolean {
  return Object.values(request.fields).some((drawn) => drawn.tooDeepForBinary?.(protocol) ?? false);
}

/** Tells whether the case can travel as protobuf JSON. */
export function jsonCarries(request: RequestCase): boolean {
  return Object.values(request.fields).every((drawn) => !drawn.binaryOnly);
}

/** Returns the request message's init object (localName to value). */
export function requestInit(request: RequestCase): Record<string, unknown> {
  return Object.fromEntries(Object.entries(request.fields).map(([name, drawn]) => [name, drawn.value]));
}
