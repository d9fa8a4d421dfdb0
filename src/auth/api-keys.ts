/**
 * The API key format. A key's secret, as printed once by `keys create`, is
 *
 *     smk_<ULID>_<43 base64url characters: 256 random bits>
 *
 * The prefix makes leaked keys recognizable to secret scanners; the ULID is
 * the key id (`key_<ULID>`, what `keys list` shows and logs carry); the rest
 * is the secret, stored only as its SHA-256 (a fast hash is enough for 256
 * random bits: there is nothing to guess).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { ulid } from "ulid";

/** The prefix every API key secret starts with. */
export const API_KEY_PREFIX = "smk_";

const FORMAT = /^smk_([0-9A-HJKMNP-TV-Z]{26})_([A-Za-z0-9_-]{43})$/;

/** A newly minted key: `token` is shown once and never stored. */
export interface MintedKey {
  keyId: string;
  token: string;
  secretHash: Buffer;
}

/** Mints a key id and secret. */
export function mintApiKey(): MintedKey {
  const id = ulid();
  const secret = randomBytes(32).toString("base64url");
  return { keyId: `key_${id}`, token: `${API_KEY_PREFIX}${id}_${secret}`, secretHash: hashSecret(secret) };
}

/** Splits a presented token into its key id and secret; null when it is not shaped like an API key. */
export function parseApiKey(token: string): { keyId: string; secret: string } | null {
  const match = FORMAT.exec(token);
  return match === null ? null : { keyId: `key_${match[1]}`, secret: match[2]! };
}

/** Returns the SHA-256 of a secret, as stored in api_keys.secret_hash. */
export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}

/** Compares a presented secret with a stored hash in constant time. */
export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const presented = hashSecret(secret);
  return storedHash.length === presented.length && timingSafeEqual(presented, storedHash);
}
