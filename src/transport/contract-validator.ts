/**
 * The contract's protovalidate validator, with a faster regex matcher.
 *
 * protovalidate matches `string.pattern` rules with RE2 (the @bufbuild/re2
 * package, an RE2 port in JavaScript): RE2 syntax and linear-time matching,
 * its documented contract. Our patterns (proto/sessionmanager/v1) are all
 * of one simple shape (`^sess_[0-9A-HJKMNP-TV-Z]{26}$`, `^[A-Za-z0-9._:-]+$`,
 * `^[A-Za-z0-9._:-]+(\.\*)?$`, ...), and for that shape V8's RegExp gives the
 * same answer in linear time, at a fraction of the cost: matching the session_id
 * pattern with RE2 was about 4% of a no-op gRPC call's CPU (bench/noop-server.ts
 * profile). Any other pattern (a group, an alternation, `.`, an escape, a
 * negated class, a non-ASCII character, more than one unbounded repetition)
 * still goes to RE2.
 */
import { RE2JS } from "@bufbuild/re2";
import { createValidator, type Validator } from "@bufbuild/protovalidate";

/**
 * The shape run on RegExp: anchored at both ends, a sequence of pieces or
 * optional groups of pieces (`(...)` or `(...)?`, no alternation, no
 * nesting). A piece is an ASCII letter, digit or `_`, an escaped `.`, `*`,
 * `:` or `-`, or a non-negated class of ASCII letters, digits and `._:-`,
 * each optionally repeated (`?`, `*`, `+`, `{n}`, `{n,}`, `{n,m}`). Over
 * such a pattern RegExp and RE2 agree on every input: it has no construct
 * whose meaning differs (`.`, `\s`, `$` before a newline, case folding,
 * UTF-16 code units against code points: an ASCII class never matches half
 * of a surrogate pair, and a class is never negated).
 */
const PIECE = String.raw`(?:[A-Za-z0-9_]|\\[.*:-]|\[[A-Za-z0-9._:-]+\])(?:[?*+]|\{\d+(?:,\d*)?\})?`;
const SIMPLE = new RegExp(String.raw`^\^(?:${PIECE}|\((?:${PIECE})+\)\??)*\$$`);
/** Unbounded repetitions (outside escapes): with at most one, a backtracking match is linear in the input's length. */
const UNBOUNDED = /[*+]|\{\d+,\}/g;

/** Tells whether `pattern` runs on RegExp (see SIMPLE); exported for its test. */
export function runsNatively(pattern: string): boolean {
  return SIMPLE.test(pattern) && (pattern.replace(/\\./g, "").match(UNBOUNDED)?.length ?? 0) <= 1;
}

/**
 * Cached compiled patterns, native or RE2. The contract has a handful; CEL
 * `matches()` could build patterns from input, so the cache is bounded the
 * way protovalidate's own is (cleared past 1,024 entries).
 */
const compiled = new Map<string, { test(input: string): boolean }>();
const CACHE_LIMIT = 1024;

/**
 * protovalidate's `RegexMatcher`: RegExp for the simple shape, RE2 otherwise.
 *
 * @throws RE2's syntax error for a pattern that is not valid RE2, as the default matcher does.
 */
export function matchContractPattern(pattern: string, input: string): boolean {
  let matcher = compiled.get(pattern);
  if (matcher === undefined) {
    if (compiled.size >= CACHE_LIMIT) compiled.clear();
    matcher = runsNatively(pattern) ? new RegExp(pattern) : RE2JS.compile(pattern);
    compiled.set(pattern, matcher);
  }
  return matcher.test(input);
}

/** The validator every adapter's validate interceptor uses. */
export function createContractValidator(): Validator {
  return createValidator({ regexMatch: matchContractPattern });
}
