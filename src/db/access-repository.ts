/**
 * What the access checks read and write: API keys (table api_keys,
 * migrations/005) and the owner of a session.
 */
import type { Role } from "../auth/principal.js";
import type { Executor } from "./database.js";

/** An API key as stored: never its secret, only the secret's SHA-256. */
export interface ApiKey {
  keyId: string;
  name: string;
  role: Role;
  /** SHA-256 of the secret, 32 bytes. */
  secretHash: Buffer;
  createTime: Date;
  lastUseTime: Date | null;
  revokeTime: Date | null;
}

interface ApiKeyRow {
  key_id: string;
  name: string;
  role: Role;
  secret_hash: Buffer;
  create_time: Date;
  last_use_time: Date | null;
  revoke_time: Date | null;
}

function toApiKey(row: ApiKeyRow): ApiKey {
  return {
    keyId: row.key_id,
    name: row.name,
    role: row.role,
    secretHash: row.secret_hash,
    createTime: row.create_time,
    lastUseTime: row.last_use_time,
    revokeTime: row.revoke_time,
  };
}

/** Stores a new key. */
export async function insertApiKey(ex: Executor, key: { keyId: string; name: string; role: Role; secretHash: Buffer }): Promise<ApiKey> {
  const [row] = await ex<ApiKeyRow[]>`
    insert into api_keys (key_id, name, role, secret_hash)
    values (${key.keyId}, ${key.name}, ${key.role}, ${key.secretHash})
    returning *`;
  return toApiKey(row!);
}

/** Reads one key, revoked or not; null when no key has that id. */
export async function findApiKey(ex: Executor, keyId: string): Promise<ApiKey | null> {
  const [row] = await ex<ApiKeyRow[]>`select * from api_keys where key_id = ${keyId}`;
  return row === undefined ? null : toApiKey(row);
}

/** Lists every key, oldest first. */
export async function listApiKeys(ex: Executor): Promise<ApiKey[]> {
  const rows = await ex<ApiKeyRow[]>`select * from api_keys order by create_time, key_id`;
  return rows.map(toApiKey);
}

/** Revokes a key (idempotent: the first revoke_time stays); false when no key has that id. */
export async function revokeApiKey(ex: Executor, keyId: string): Promise<boolean> {
  const rows = await ex`update api_keys set revoke_time = coalesce(revoke_time, now()) where key_id = ${keyId} returning key_id`;
  return rows.length === 1;
}

/** Returns which of `keyIds` are revoked now. */
export async function findRevokedApiKeys(ex: Executor, keyIds: string[]): Promise<string[]> {
  const rows = await ex<{ key_id: string }[]>`select key_id from api_keys where key_id = any(${keyIds}) and revoke_time is not null`;
  return rows.map((row) => row.key_id);
}

/** Records that keys were used (at most once a minute per key and replica; see the authenticator). */
export async function touchApiKeys(ex: Executor, keyIds: string[]): Promise<void> {
  await ex`update api_keys set last_use_time = now() where key_id = any(${keyIds})`;
}

/** Returns the user a session belongs to, or null when there is no such session. A session's user never changes. */
export async function findSessionOwner(ex: Executor, sessionId: string): Promise<string | null> {
  const [row] = await ex<{ user_id: string }[]>`select user_id from sessions where session_id = ${sessionId}`;
  return row?.user_id ?? null;
}
