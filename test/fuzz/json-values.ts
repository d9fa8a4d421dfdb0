/**
 * Arbitraries for `metadata` and `payload` (google.protobuf.Struct) and the
 * oracle of their documented limits. The limits are stated in the proto's
 * comments (StartSessionRequest.metadata, AppendSessionEventRequest.payload)
 * and the README's error table, not in buf.validate options, so they are
 * written here: at most 16 KiB (metadata) or 64 KiB (payload) as UTF-8 JSON,
 * at most 20 levels of objects and arrays (`{}` is one), no NUL, no unpaired
 * surrogates, numbers 0 or of magnitude 1e-6 to below 1e21.
 */
import fc from "fast-check";
import { onTheWire, type Drawn, type Protocol } from "./contract-rules.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** The nesting limit of the proto comments ("20 levels of nested objects and arrays"). */
const MAX_DEPTH = 20;

/** Numbers at and across the documented range, and the ones JSON cannot carry (binary only). */
const EDGE_NUMBERS = [0, -0, 1, -1, 1e-6, -1e-6, 9.99e-7, 1e21, 9.999999999999999e20, -1e21, 5e-324, Number.MAX_VALUE, Number.MAX_SAFE_INTEGER, 2 ** 53 + 1, 0.1, 123.456];
const NON_FINITE = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

/** Returns the value as the server decodes it over `protocol` (binary protobuf carries UTF-8: lone surrogates arrive as U+FFFD). */
function wireValue(value: Json, protocol: Protocol): Json {
  if (typeof value === "string") return onTheWire(value, protocol);
  if (Array.isArray(value)) return value.map((v) => wireValue(v, protocol));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [onTheWire(k, protocol), wireValue(v, protocol)]));
  }
  return value;
}

function depth(value: Json): number {
  if (value === null || typeof value !== "object") return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + children.reduce<number>((deepest, child) => Math.max(deepest, depth(child)), 0);
}

function everyLeaf(value: Json, check: (leaf: string | number) => boolean): boolean {
  if (typeof value === "string" || typeof value === "number") return check(value);
  if (Array.isArray(value)) return value.every((v) => everyLeaf(v, check));
  if (value !== null && typeof value === "object") return Object.entries(value).every(([k, v]) => check(k) && everyLeaf(v, check));
  return true;
}

/** The oracle: whether the documented limits accept `value` as the server receives it over `protocol`. */
export function jsonValid(value: JsonObject, maxBytes: number, protocol: Protocol): boolean {
  const received = wireValue(value, protocol) as JsonObject;
  if (depth(received) > MAX_DEPTH) return false;
  const leavesOk = everyLeaf(received, (leaf) =>
    typeof leaf === "number"
      ? Number.isFinite(leaf) && (leaf === 0 || (Math.abs(leaf) >= 1e-6 && Math.abs(leaf) < 1e21))
      : !leaf.includes("\u0000") && leaf.isWellFormed(),
  );
  return leavesOk && Buffer.byteLength(JSON.stringify(received), "utf8") <= maxBytes;
}

/**
 * Tells whether protobuf-es may refuse to decode the value over a binary
 * protocol: it counts about two message levels per level of JSON (Struct or
 * ListValue, then Value) against its recursion limit of 100, so the request
 * is answered by connect-es (or grpc-js) before any rule runs, with INTERNAL
 * "parse binary: ... maximum recursion depth" (or "Error deserializing
 * request"), the upstream case the README's Errors section describes.
 * Measured here: 40 levels decode (and get INVALID_REQUEST), 50 do not; the
 * oracle allows INTERNAL from 41 levels on, and never below.
 */
export function binaryDecoderRefuses(value: JsonObject, protocol: Protocol): boolean {
  return protocol !== "connect" && depth(value) > 40;
}

function hasNonFinite(value: Json): boolean {
  return !everyLeaf(value, (leaf) => typeof leaf !== "number" || Number.isFinite(leaf));
}

/** Nests `leaf` `levels` deep in alternating objects and arrays; the result is an object (one level). */
function nest(levels: number, leaf: Json, arrays: boolean): JsonObject {
  let value: Json = leaf;
  for (let level = 1; level < levels; level++) value = arrays && level % 2 === 0 ? [value] : { n: value };
  return { root: value };
}

const hostileText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.constantFrom("\u0000", "a\u0000b", "\ud800", "x\udfffy", "\ud83d", "😀", "\u202eevil", "", "null", "__proto__", "constructor"),
);

const leaf: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(fc.string({ maxLength: 20 }), fc.boolean(), fc.constant(null), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })) },
  { weight: 2, arbitrary: fc.constantFrom(...EDGE_NUMBERS) },
  { weight: 1, arbitrary: fc.constantFrom(...NON_FINITE) },
  { weight: 1, arbitrary: hostileText },
);

const { tree } = fc.letrec<{ tree: Json; node: Json }>((tie) => ({
  tree: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, tie("node")),
  node: fc.oneof(fc.array(tie("tree"), { maxLength: 4 }), fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), hostileText), tie("tree"), { maxKeys: 4 })),
}));

/**
 * Draws a Struct for a field limited to `maxBytes`: ordinary objects, values
 * nested around the depth limit (up to protobuf's own 100-level message
 * nesting and beyond), strings sized to land one byte under, at and over
 * the byte limit, and hostile keys, strings and numbers.
 */
export function structArbitrary(maxBytes: number): fc.Arbitrary<Drawn<JsonObject | undefined>> {
  const ordinary = fc.dictionary(fc.string({ maxLength: 10 }), tree, { maxKeys: 6 });
  const deep = fc
    .tuple(fc.constantFrom(MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 31, 40, 60), leaf, fc.boolean())
    .map(([levels, value, arrays]) => nest(levels, value, arrays));
  // {"k":"xxx"} is 8 bytes of JSON plus the string.
  const sized = fc
    .tuple(fc.constantFrom(-1, 0, 1, 100), fc.constantFrom("x", "é", "😀"))
    .map(([over, unit]) => {
      const unitBytes = Buffer.byteLength(unit);
      const count = Math.max(0, Math.floor((maxBytes + over - 8) / unitBytes));
      return { k: unit.repeat(count) } as JsonObject;
    });
  const hostile = fc.dictionary(hostileText, fc.oneof(leaf, fc.constantFrom(...NON_FINITE)), { minKeys: 1, maxKeys: 3 });
  return fc
    .option(fc.oneof({ weight: 5, arbitrary: ordinary }, { weight: 2, arbitrary: deep }, { weight: 2, arbitrary: sized }, { weight: 2, arbitrary: hostile }), { freq: 4, nil: undefined })
    .map((value) =>
      value === undefined
        ? { value: undefined, valid: () => true }
        : {
            value,
            valid: (protocol: Protocol) => jsonValid(value, maxBytes, protocol),
            binaryOnly: hasNonFinite(value),
            tooDeepForBinary: (protocol: Protocol) => binaryDecoderRefuses(value, protocol),
          },
    );
}
