/**
 * Encodes and decodes AIP-158 page tokens. A token carries the keyset
 * position and the filters it was issued for; using it with other filters is
 * INVALID_PAGE_TOKEN. Format: base64url of JSON, opaque to clients.
 */
import { DomainError } from "./errors.js";
import { canonicalJson } from "./json.js";

/** Encodes a position together with the filters of the listing. */
export function encodePageToken(filters: object, position: object): string {
  return Buffer.from(canonicalJson({ v: 1, f: filters, p: position })).toString("base64url");
}

/**
 * Decodes a token issued by `encodePageToken` for the same filters.
 *
 * @returns the position, or null for the empty (first page) token.
 * @throws DomainError INVALID_PAGE_TOKEN if the token is malformed or the filters differ.
 */
export function decodePageToken(token: string, filters: object): Record<string, unknown> | null {
  if (token === "") return null;
  let parsed: { v?: unknown; f?: unknown; p?: unknown } | null;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as typeof parsed;
  } catch {
    parsed = null;
  }
  const valid = typeof parsed === "object" && parsed !== null && parsed.v === 1 && typeof parsed.p === "object" && parsed.p !== null;
  if (!valid) throw new DomainError("INVALID_PAGE_TOKEN", "page_token is not a token returned by this service");
  if (canonicalJson(parsed!.f) !== canonicalJson(filters)) {
    throw new DomainError("INVALID_PAGE_TOKEN", "page_token was issued for different filters");
  }
  return parsed!.p as Record<string, unknown>;
}
