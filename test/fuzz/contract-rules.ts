/**
 * The protovalidate rules of the contract, read at runtime from the
 * descriptors protoc-gen-es embeds in gen/ (the `(buf.validate.field)`
 * options of proto/sessionmanager/v1/*.proto), and fast-check arbitraries
 * that draw values at, inside and across each bound, each labelled by an
 * oracle of the rule: a changed rule in the proto changes what is drawn and
 * what is expected, without touching this file.
 *
 * Rules the proto states only in comments (JSON limits of `metadata` and
 * `payload`, reserved event types) and the two CEL rules of
 * UpdateSessionRequest are written here by hand, each with its source.
 */
import { getOption, hasOption, isFieldSet, type DescField, type DescMessage } from "@bufbuild/protobuf";
import {
  DurationRulesSchema,
  EnumRulesSchema,
  field as validateField,
  Int32RulesSchema,
  RepeatedRulesSchema,
  StringRulesSchema,
  TimestampRulesSchema,
  type FieldRules,
  type StringRules,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import fc from "fast-check";

/** Wire protocols the fuzzer speaks; "connect" is Connect JSON over HTTP/1.1, the others binary protobuf. */
export type Protocol = "grpc" | "connect" | "grpc-web";

/**
 * A drawn field value and what the contract says about it.
 * `valid` is the oracle's verdict for the value as the server receives it
 * over `protocol`; `binaryOnly` marks values protobuf JSON cannot carry
 * (non-finite numbers, out-of-range timestamps), sent only over binary protocols.
 */
export interface Drawn<T = unknown> {
  value: T;
  valid: (protocol: Protocol) => boolean;
  binaryOnly?: boolean;
  /**
   * True when protobuf-es refuses the value while decoding the request over
   * `protocol`, before any rule runs: strings with lone surrogates in protobuf
   * JSON. Such a request is INVALID_ARGUMENT without ErrorInfo (README, Errors:
   * "Errors raised by Connect itself before a handler runs carry no ErrorInfo").
   */
  undecodable?: (protocol: Protocol) => boolean;
  /** True when the value nests beyond protobuf-es's decoder limit over `protocol` (json-values.ts, binaryDecoderRefuses). */
  tooDeepForBinary?: (protocol: Protocol) => boolean;
}

/** Tells whether protobuf JSON decoding refuses a string field's value: it must be well-formed UTF-16. */
export function jsonRefuses(text: string, protocol: Protocol): boolean {
  return protocol === "connect" && !text.isWellFormed();
}

/** Returns the `(buf.validate.field)` rules of a field, or null without any. */
export function fieldRules(field: DescField): FieldRules | null {
  return hasOption(field, validateField) ? getOption(field, validateField) : null;
}

/** Returns the value a string field has on the server: binary protobuf carries UTF-8, so a lone surrogate arrives as U+FFFD. */
export function onTheWire(text: string, protocol: Protocol): string {
  return protocol === "connect" ? text : text.toWellFormed();
}

/** Checks a string against StringRules as protovalidate does: lengths count code points, the pattern is RE2 (the proto's patterns mean the same in JS). */
export function stringValid(rules: StringRules, text: string): boolean {
  const length = [...text].length;
  if (isFieldSet(rules, StringRulesSchema.field.minLen) && length < Number(rules.minLen)) return false;
  if (isFieldSet(rules, StringRulesSchema.field.maxLen) && length > Number(rules.maxLen)) return false;
  if (isFieldSet(rules, StringRulesSchema.field.pattern) && !new RegExp(rules.pattern, "u").test(text)) return false;
  return true;
}

/** Characters that break most rules: NUL, a lone surrogate of each half, controls, non-ASCII letters, an emoji, RTL and combining marks. */
const HOSTILE = ["\u0000", "\ud800", "\udfff", "\u001f", "\u007f", "é", "ß", "漢", "😀", "\u202e", "e\u0301", "\ufeff", " ", "/", "*", "%"];

/**
 * Draws strings for StringRules: values matching the pattern, the same
 * stretched or cut to every length bound (min-1, min, max, max+1), matching
 * values with a hostile character inserted, and arbitrary unicode.
 */
export function stringArbitrary(rules: StringRules, semantic: fc.Arbitrary<string>[] = []): fc.Arbitrary<Drawn<string>> {
  const pattern = isFieldSet(rules, StringRulesSchema.field.pattern) ? new RegExp(rules.pattern) : null;
  const matching = pattern === null ? fc.string({ maxLength: 40 }) : fc.stringMatching(pattern);
  const bounds: number[] = [0];
  if (isFieldSet(rules, StringRulesSchema.field.minLen)) bounds.push(Number(rules.minLen) - 1, Number(rules.minLen), Number(rules.minLen) + 1);
  if (isFieldSet(rules, StringRulesSchema.field.maxLen)) bounds.push(Number(rules.maxLen) - 1, Number(rules.maxLen), Number(rules.maxLen) + 1, Number(rules.maxLen) * 4);
  const lengths = bounds.filter((n) => n >= 0);
  const atBound = fc.tuple(matching, fc.constantFrom(...lengths)).map(([text, length]) => (text === "" ? "a" : text).repeat(length + 1).slice(0, length));
  const withHostile = fc
    .tuple(matching, fc.constantFrom(...HOSTILE), fc.nat())
    .map(([text, bad, at]) => text.slice(0, at % (text.length + 1)) + bad + text.slice(at % (text.length + 1)));
  const anyText = fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), fc.string({ unit: "grapheme", maxLength: 60 }));
  return fc
    .oneof(
      { weight: 6, arbitrary: semantic.length > 0 ? fc.oneof(...semantic) : matching },
      { weight: 3, arbitrary: matching },
      { weight: 2, arbitrary: atBound },
      { weight: 2, arbitrary: withHostile },
      { weight: 1, arbitrary: anyText },
    )
    .map((value) => ({ value, valid: (protocol: Protocol) => stringValid(rules, onTheWire(value, protocol)), undecodable: (protocol: Protocol) => jsonRefuses(value, protocol) }));
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** Draws int32 values at, inside and across the Int32Rules bounds (gte/gt, lte/lt) and at the type's extremes. */
export function int32Arbitrary(rules: FieldRules): fc.Arbitrary<Drawn<number>> {
  const int = rules.type.case === "int32" ? rules.type.value : null;
  const low = int?.greaterThan.case === "gte" ? int.greaterThan.value : int?.greaterThan.case === "gt" ? int.greaterThan.value + 1 : INT32_MIN;
  const high = int?.lessThan.case === "lte" ? int.lessThan.value : int?.lessThan.case === "lt" ? int.lessThan.value - 1 : INT32_MAX;
  const edges = [low - 1, low, low + 1, high - 1, high, high + 1, INT32_MIN, INT32_MAX, -1].filter((n) => n >= INT32_MIN && n <= INT32_MAX);
  return fc
    .oneof(fc.constantFrom(...edges), fc.integer({ min: low, max: high }), fc.integer({ min: INT32_MIN, max: INT32_MAX }))
    .map((value) => ({ value, valid: () => value >= low && value <= high }));
}

/** A google.protobuf.Timestamp or Duration as protobuf-es holds it. */
export interface SecondsNanos {
  seconds: bigint;
  nanos: number;
}

function compare(a: SecondsNanos, b: SecondsNanos): number {
  return a.seconds !== b.seconds ? (a.seconds < b.seconds ? -1 : 1) : a.nanos - b.nanos;
}

/** Bounds of a Timestamp or Duration rule: `low`/`high` with whether each is inclusive. */
interface TimeBounds {
  low: SecondsNanos | null;
  lowInclusive: boolean;
  high: SecondsNanos | null;
  highInclusive: boolean;
}

function timeBounds(rules: FieldRules): TimeBounds {
  const typed = rules.type.case === "timestamp" || rules.type.case === "duration" ? rules.type.value : null;
  const gt = typed?.greaterThan;
  const lt = typed?.lessThan;
  const pick = (bound: { case: string | undefined; value?: unknown } | undefined, exclusive: string, inclusive: string) =>
    bound?.case === exclusive || bound?.case === inclusive ? (bound.value as SecondsNanos) : null;
  return {
    low: pick(gt, "gt", "gte"),
    lowInclusive: gt?.case === "gte",
    high: pick(lt, "lt", "lte"),
    highInclusive: lt?.case === "lte",
  };
}

const INT64_MAX = 2n ** 63n - 1n;
/** Timestamp's own range, 0001-01-01 to 9999-12-31 (google/protobuf/timestamp.proto); protobuf JSON cannot write anything outside. */
const TIMESTAMP_RANGE = [-62_135_596_800n, 253_402_300_799n] as const;
/** Duration's own range, +-10,000 years (google/protobuf/duration.proto). */
const DURATION_MAX_SECONDS = 315_576_000_000n;

/**
 * Draws Timestamps or Durations at, inside and across the rule's bounds (one
 * nanosecond either side), at the type's own limits and beyond them, and with
 * nanos out of range. Values protobuf JSON cannot write are `binaryOnly`.
 * Verdict: valid when nanos are in range (0..999,999,999 for timestamps,
 * |nanos| < 1e9 for durations, the service's own check, src/transport/convert.ts)
 * and the value is inside the bounds.
 */
export function timeArbitrary(rules: FieldRules, kind: "timestamp" | "duration"): fc.Arbitrary<Drawn<SecondsNanos>> {
  const { low, lowInclusive, high, highInclusive } = timeBounds(rules);
  const shift = (at: SecondsNanos, nanos: number): SecondsNanos => {
    const total = at.nanos + nanos;
    const carry = Math.floor(total / 1e9);
    return { seconds: at.seconds + BigInt(carry), nanos: total - carry * 1e9 };
  };
  const edges: SecondsNanos[] = [];
  for (const bound of [low, high]) {
    if (bound !== null) edges.push(shift(bound, -1), bound, shift(bound, 1), shift(bound, -1e9), shift(bound, 1e9));
  }
  const lowSeconds = low?.seconds ?? (kind === "timestamp" ? TIMESTAMP_RANGE[0] : 0n);
  const highSeconds = high?.seconds ?? (kind === "timestamp" ? TIMESTAMP_RANGE[1] : DURATION_MAX_SECONDS);
  const inside = fc.record({ seconds: fc.bigInt({ min: lowSeconds, max: highSeconds }), nanos: fc.integer({ min: 0, max: 999_999_999 }) });
  const extreme = fc.record({
    seconds: fc.constantFrom(0n, -1n, TIMESTAMP_RANGE[0], TIMESTAMP_RANGE[1], TIMESTAMP_RANGE[1] + 1n, -DURATION_MAX_SECONDS, DURATION_MAX_SECONDS, INT64_MAX, -INT64_MAX - 1n),
    nanos: fc.constantFrom(0, 1, 999_999_999, -1, -999_999_999, 1_000_000_000, 2 ** 31 - 1, -(2 ** 31)),
  });
  return fc.oneof({ weight: 3, arbitrary: inside }, { weight: 3, arbitrary: fc.constantFrom(...edges) }, { weight: 1, arbitrary: extreme }).map((value) => {
    const nanosOk = kind === "timestamp" ? value.nanos >= 0 && value.nanos <= 999_999_999 : Math.abs(value.nanos) <= 999_999_999;
    // protobuf JSON writes only values inside the type's own range, with nanos of the seconds' sign.
    const jsonable =
      nanosOk &&
      (kind === "timestamp"
        ? value.seconds >= TIMESTAMP_RANGE[0] && value.seconds <= TIMESTAMP_RANGE[1]
        : value.seconds >= -DURATION_MAX_SECONDS && value.seconds <= DURATION_MAX_SECONDS && (value.seconds === 0n || value.nanos === 0 || value.seconds > 0n === value.nanos > 0));
    const inBounds =
      (low === null || (lowInclusive ? compare(value, low) >= 0 : compare(value, low) > 0)) &&
      (high === null || (highInclusive ? compare(value, high) <= 0 : compare(value, high) < 0));
    return { value, valid: () => nanosOk && inBounds, binaryOnly: !jsonable };
  });
}

/** Draws enum numbers: every defined value, and (with `defined_only`) undefined ones across both ends and int32's extremes. */
export function enumArbitrary(field: DescField & { fieldKind: "enum" }, rules: FieldRules | null): fc.Arbitrary<Drawn<number>> {
  const defined = field.enum.values.map((v) => v.number);
  const definedOnly = rules?.type.case === "enum" && rules.type.value.definedOnly;
  const undefinedValues = [Math.max(...defined) + 1, Math.min(...defined) - 1, 99, INT32_MAX, INT32_MIN];
  return fc
    .oneof({ weight: 5, arbitrary: fc.constantFrom(...defined) }, { weight: 1, arbitrary: fc.constantFrom(...undefinedValues) })
    .map((value) => ({ value, valid: () => !definedOnly || defined.includes(value) }));
}

/** Draws repeated strings: lengths 0 to max_items + 1, each item drawn for the item rules. */
export function repeatedStringArbitrary(rules: FieldRules): fc.Arbitrary<Drawn<string[]>> {
  const repeated = rules.type.case === "repeated" ? rules.type.value : null;
  const maxItems = repeated && isFieldSet(repeated, RepeatedRulesSchema.field.maxItems) ? Number(repeated.maxItems) : 8;
  const itemRules = repeated?.items?.type.case === "string" ? repeated.items.type.value : null;
  if (itemRules === null) throw new Error("only repeated strings are fuzzed: extend repeatedStringArbitrary");
  const items = stringArbitrary(itemRules);
  return fc
    .oneof(fc.array(items, { maxLength: 3 }), fc.array(items, { minLength: maxItems, maxLength: maxItems + 1 }))
    .map((drawn) => ({
      value: drawn.map((d) => d.value),
      valid: (protocol: Protocol) => drawn.length <= maxItems && drawn.every((d) => d.valid(protocol)),
      undecodable: (protocol: Protocol) => drawn.some((d) => jsonRefuses(d.value, protocol)),
    }));
}

/** The rule fields this file draws and judges, by rules message; any other rule set in the proto fails the run (see `ruleArbitrary`). */
const SUPPORTED_RULES: [DescMessage, string[]][] = [
  [StringRulesSchema, ["min_len", "max_len", "pattern"]],
  [Int32RulesSchema, ["gte", "gt", "lte", "lt"]],
  [TimestampRulesSchema, ["gt", "gte", "lt", "lte"]],
  [DurationRulesSchema, ["gt", "gte", "lt", "lte"]],
  [EnumRulesSchema, ["defined_only"]],
  [RepeatedRulesSchema, ["max_items", "items"]],
];

/** Throws when the rules of a field use something the arbitraries and the oracle do not know, so a new rule cannot be fuzzed wrongly in silence. */
function checkSupported(where: string, rules: FieldRules): void {
  if (rules.type.case === undefined) return;
  const message = rules.type.value;
  const entry = SUPPORTED_RULES.find(([schema]) => schema.typeName === message.$typeName);
  if (entry === undefined) throw new Error(`${where}: ${message.$typeName} is not fuzzed yet: extend test/fuzz/contract-rules.ts`);
  const [schema, supported] = entry;
  for (const field of schema.fields) {
    if (isFieldSet(message as never, field as never) && !supported.includes(field.name)) {
      throw new Error(`${where}: rule ${message.$typeName}.${field.name} is not fuzzed yet: extend test/fuzz/contract-rules.ts`);
    }
  }
  if (rules.type.case === "repeated" && rules.type.value.items) checkSupported(`${where}[]`, rules.type.value.items);
}

/** Reads the rules of a field as the arbitrary for it; message fields other than Timestamp and Duration return null (drawn by hand). */
export function ruleArbitrary(field: DescField, semantic: fc.Arbitrary<string>[] = []): fc.Arbitrary<Drawn> | null {
  const rules = fieldRules(field);
  if (rules !== null) checkSupported(field.name, rules);
  if (field.fieldKind === "enum") return enumArbitrary(field, rules);
  if (field.fieldKind === "scalar" && rules?.type.case === "string") return stringArbitrary(rules.type.value, semantic);
  if (field.fieldKind === "scalar" && rules?.type.case === "int32") return int32Arbitrary(rules);
  if (field.fieldKind === "list" && rules?.type.case === "repeated") return repeatedStringArbitrary(rules);
  if (field.fieldKind === "message" && rules !== null && (rules.type.case === "timestamp" || rules.type.case === "duration")) {
    return fc.option(timeArbitrary(rules, rules.type.case), { freq: 3, nil: undefined }).map((drawn) => drawn ?? { value: undefined, valid: () => true });
  }
  if (field.fieldKind === "scalar" && field.scalar === 8 /* bool */) return fc.boolean().map((value) => ({ value, valid: () => true }));
  return null;
}
