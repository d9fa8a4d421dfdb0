/**
 * Checks caller-supplied JSON (google.protobuf.Struct) before it is stored as
 * jsonb, so bad input is rejected with a clear reason instead of failing in
 * the database or being silently altered.
 */
import { invalidRequest } from "./errors.js";

/** Names a JSON object as protobuf-es represents google.protobuf.Struct. */
export type JsonObject = { [key: string]: JsonValue };
/** A JSON value as protobuf-es represents google.protobuf.Value (null for NullValue). */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

/**
 * Caps how deeply caller JSON (`metadata`, `payload`) may nest: objects and
 * arrays count one level each, so `{}` is 1 and `{"a":[1]}` is 2.
 *
 * Why 20: protobuf represents JSON as google.protobuf.Struct, and every
 * object level costs three message levels (Struct, its map entry, Value) and
 * every array level two (Value, ListValue). Standard decoders (protobuf-es,
 * C++, Java, Python, Go) refuse messages nested deeper than 100 levels, and an
 * event sits two levels down in a response (e.g. WatchSessionEventsResponse,
 * SessionEvent). Lifecycle events nest `metadata` up to two levels deeper
 * ("session.updated" holds `metadata.old`/`metadata.new`). 20 + 2 levels cost
 * at most 2 + 3 x 22 + 1 = 69 message levels: readable everywhere, with room.
 */
export const MAX_JSON_DEPTH = 20;

/**
 * Caps the depth a stored value may have and still be sent in a message:
 * 2 + 3 x 30 + 1 = 93 message levels, inside every standard decoder's 100.
 * Only rows written before MAX_JSON_DEPTH existed can be deeper; readers get
 * them withheld (see `isReadableJson`), never a message they cannot decode.
 */
export const MAX_READABLE_JSON_DEPTH = 30;

/**
 * Returns how deeply `value` nests (scalars 0, `{}` and `[]` 1), counting no
 * further than `limit + 1`, so a hostile value costs no more than the limit.
 */
export function jsonDepth(value: JsonValue, limit = Number.MAX_SAFE_INTEGER): number {
  if (value === null || typeof value !== "object") return 0;
  if (limit < 0) return 1;
  let deepest = 0;
  for (const child of Array.isArray(value) ? value : Object.values(value)) {
    deepest = Math.max(deepest, jsonDepth(child, limit - 1));
    if (deepest > limit) break;
  }
  return 1 + deepest;
}

/** Tells whether a stored JSON value can be sent in a protobuf message that standard decoders read back. */
export function isReadableJson(value: JsonValue): boolean {
  return jsonDepth(value, MAX_READABLE_JSON_DEPTH) <= MAX_READABLE_JSON_DEPTH;
}

/**
 * Checks that `value` fits in `maxBytes` as UTF-8 JSON, nests at most
 * MAX_JSON_DEPTH levels, and can be stored as jsonb unchanged and without
 * growing: no NUL characters or unpaired surrogates (jsonb rejects both), no
 * non-finite numbers (JSON has no NaN or Infinity), and no numbers jsonb
 * would print with hundreds of digits.
 *
 * @throws DomainError INVALID_REQUEST naming `field`.
 */
export function checkJsonObject(field: string, value: JsonObject, maxBytes: number): void {
  if (jsonDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw invalidRequest(field, `nests deeper than ${MAX_JSON_DEPTH} levels of objects and arrays`);
  }
  const problem = findProblem(value);
  if (problem !== null) throw invalidRequest(field, problem);
  const bytes = Buffer.byteLength(JSON.stringify(value), "utf8");
  if (bytes > maxBytes) {
    throw invalidRequest(field, `is ${bytes} bytes as JSON; the limit is ${maxBytes}`);
  }
}

function findProblem(value: JsonValue): string | null {
  if (typeof value === "number") return numberProblem(value);
  if (typeof value === "string") return textProblem(value, "strings");
  if (value === null || typeof value === "boolean") return null;
  const children = Array.isArray(value) ? value : Object.values(value);
  if (!Array.isArray(value)) {
    for (const key of Object.keys(value)) {
      const problem = textProblem(key, "keys");
      if (problem !== null) return problem;
    }
  }
  for (const child of children) {
    const problem = findProblem(child);
    if (problem !== null) return problem;
  }
  return null;
}

/**
 * jsonb stores numbers as exact decimals and prints them in full: 1e308 takes
 * 309 characters, 1e-300 takes 302. Numbers are therefore limited to 0 and
 * magnitudes from 1e-6 to below 1e21, the range JSON.stringify writes without
 * an exponent, so what the database stores and returns stays as small as what
 * the caller sent.
 */
function numberProblem(value: number): string | null {
  if (!Number.isFinite(value)) return "numbers must be finite";
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-6 || magnitude >= 1e21)) {
    return "numbers must be 0 or have a magnitude from 1e-6 to below 1e21";
  }
  return null;
}

/** jsonb rejects NUL characters and unpaired UTF-16 surrogates (JSON "\ud800" escapes). */
function textProblem(text: string, what: string): string | null {
  if (text.includes("\u0000")) return `${what} must not contain NUL (U+0000)`;
  return text.isWellFormed() ? null : `${what} must not contain unpaired UTF-16 surrogates`;
}

/**
 * Serializes JSON with object keys sorted, so equal values give equal text, in JavaScript's
 * property order: keys that are array indices ("0", "9", "10": decimal integers below
 * 2^32 - 1 without leading zeros) come first in numeric order, the other keys follow sorted by
 * UTF-16 code units. Request fingerprints (stored with every event, compared on retries) and
 * page tokens use it, so it must never change; the hash chain, which auditors recompute
 * elsewhere, uses the standard `jcs`.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * Serializes JSON as RFC 8785 (JSON Canonicalization Scheme) does: no whitespace, every
 * object's keys sorted by their UTF-16 code units (array-index keys included: "10" before
 * "9"), strings and numbers as JSON.stringify writes them (RFC 8785 adopts ECMAScript's
 * number form). Libraries in other languages do the same (Python `rfc8785`, Java
 * `erdtman/java-json-canonicalization`, Go `cyberphone/json-canonicalization`).
 * Takes JSON values (null, booleans, finite numbers, strings, arrays, plain objects; a
 * `toJSON` method is applied first); like JSON.stringify, it leaves out members whose value
 * is undefined and writes undefined array elements as null.
 */
export function jcs(value: unknown): string {
  const json = value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function" ? (value as { toJSON(): unknown }).toJSON() : value;
  if (json === null || typeof json !== "object") return JSON.stringify(json) ?? "null";
  if (Array.isArray(json)) return `[${json.map(jcs).join(",")}]`;
  const members = Object.entries(json).filter(([, v]) => v !== undefined);
  members.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${members.map(([k, v]) => `${JSON.stringify(k)}:${jcs(v)}`).join(",")}}`;
}
