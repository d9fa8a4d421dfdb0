/**
 * The API key use cases behind `session-manager keys`: mint (the secret is
 * returned once and only its hash stored), list, revoke. Format and hashing:
 * src/auth/api-keys.ts.
 */
import { mintApiKey } from "../auth/api-keys.js";
import type { Role } from "../auth/principal.js";
import type { Sql } from "../db/database.js";
import { insertApiKey, listApiKeys, revokeApiKey, type ApiKey } from "../db/access-repository.js";

/** A created key: `token` is the whole secret (`smk_...`), shown once. */
export interface CreatedKey {
  key: ApiKey;
  token: string;
}

/** Creates a key with a name (1 to 200 characters, for people) and a role. */
export async function createKey(sql: Sql, name: string, role: Role): Promise<CreatedKey> {
  const minted = mintApiKey();
  const key = await insertApiKey(sql, { keyId: minted.keyId, name, role, secretHash: minted.secretHash });
  return { key, token: minted.token };
}

/** Lists every key (revoked ones included), oldest first; never a secret. */
export function listKeys(sql: Sql): Promise<ApiKey[]> {
  return listApiKeys(sql);
}

/** Revokes a key: its calls are refused and its streams end on every replica within AUTH_CACHE_MS. False: no such key. */
export function revokeKey(sql: Sql, keyId: string): Promise<boolean> {
  return revokeApiKey(sql, keyId);
}
