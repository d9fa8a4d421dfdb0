/**
 * Turns the credential of a call into a Principal (README, "Credentials"):
 *
 * - `authorization: Bearer smk_...`: an API key, looked up in api_keys by its
 *   id (cached per replica for `cacheMs`), its secret compared in constant
 *   time with the stored SHA-256;
 * - `authorization: Bearer <JWT>`: verified by src/auth/jwt.ts, scoped to the
 *   user in its user claim;
 * - no `authorization` header, over TLS with a client certificate that the
 *   server's CA verified: the certificate's name, if TLS_CLIENT_ROLES gives
 *   it a role.
 *
 * Revocation: every `cacheMs` the replica asks the database which of the keys
 * it has accepted are revoked now; their open streams end (Principal.revoked)
 * and their next call is refused. A revocation therefore reaches every replica
 * within about `cacheMs` (default 2 s; the promise is 5 s).
 */
import type { Logger } from "pino";
import { createContextKey } from "@connectrpc/connect";
import type { Sql } from "../db/database.js";
import { findApiKey, findRevokedApiKeys, touchApiKeys, type ApiKey } from "../db/access-repository.js";
import { toDomainError } from "../db/errors.js";
import { DomainError } from "../domain/errors.js";
import { parseApiKey, secretMatches, API_KEY_PREFIX } from "./api-keys.js";
import { CLOCK_TOLERANCE_S, type JwtVerifier, type VerifiedJwt } from "./jwt.js";
import { ANONYMOUS, type Principal, type Role } from "./principal.js";

/** A TLS client certificate the server's CA verified: its subject CN and subjectAltName DNS/URI names. */
export interface PeerCertificate {
  names: string[];
}

/** Carries the connection's verified client certificate (set by the connect-node adapter; null without one). */
export const PEER_CERTIFICATE = createContextKey<PeerCertificate | null>(null, { description: "verified TLS client certificate" });

/** Configures `createAuthenticator`. */
export interface AuthenticatorOptions {
  sql: Sql;
  log: Logger;
  /** "off": every call is ANONYMOUS (config only allows it on a loopback HOST). */
  mode: "required" | "off";
  /** Null: JWTs are not accepted (CREDENTIALS_INVALID). */
  jwt: JwtVerifier | null;
  /** How long a key read from the database is trusted, and how often revocations are checked, in ms. */
  cacheMs: number;
  /** Client certificate names (CN or SAN) and their roles (TLS_CLIENT_ROLES). */
  certificateRoles?: ReadonlyMap<string, Role>;
}

/** Authenticates calls; one per replica. */
export interface Authenticator {
  /**
   * Returns the principal of a call from its `authorization` header and the
   * connection's verified client certificate.
   *
   * @throws DomainError CREDENTIALS_MISSING (nothing presented),
   *   CREDENTIALS_INVALID (malformed, unknown, revoked, expired or badly
   *   signed; the message never says which), DATABASE_UNAVAILABLE.
   */
  authenticate(authorization: string | null, peer: PeerCertificate | null): Promise<Principal>;
  /** Stops the revocation checks. */
  close(): void;
}

/** Keys remembered per replica at most (unknown ids included); the oldest are forgotten first. */
const CACHE_ENTRIES = 10_000;
/** A key's last_use_time is written at most this often per replica, in ms. */
const TOUCH_EVERY_MS = 60_000;

interface CachedKey {
  key: ApiKey | null;
  loadedAt: number;
}

/** Creates the replica's authenticator. */
export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { sql, log, cacheMs } = options;
  const certificateRoles = options.certificateRoles ?? new Map<string, Role>();
  const cache = new Map<string, CachedKey>();
  const loading = new Map<string, Promise<ApiKey | null>>();
  /** Keys accepted by this replica, with the signal their streams end on. */
  const accepted = new Map<string, AbortController>();
  const touched = new Map<string, number>();
  /**
   * Tokens whose signature and claims verified, until their `exp` (plus the
   * tolerance): a browser sends the same token on every call, and an ES256
   * verification costs about as much CPU as the rest of a GetSession. Only
   * successes are kept; a JWT cannot be revoked before its `exp`.
   */
  const verifiedTokens = new Map<string, VerifiedJwt>();
  let checking = false;
  const revocationTimer = setInterval(() => void checkRevocations(), cacheMs);
  revocationTimer.unref();

  async function checkRevocations(): Promise<void> {
    if (checking || accepted.size === 0) return;
    checking = true;
    try {
      for (const keyId of await findRevokedApiKeys(sql, [...accepted.keys()])) {
        accepted.get(keyId)?.abort();
        accepted.delete(keyId);
        cache.delete(keyId);
      }
    } catch (error) {
      log.warn({ err: error }, "revocation check failed; retrying");
    } finally {
      checking = false;
    }
  }

  async function loadKey(keyId: string): Promise<ApiKey | null> {
    const cached = cache.get(keyId);
    if (cached !== undefined && performance.now() - cached.loadedAt < cacheMs) return cached.key;
    let pending = loading.get(keyId);
    if (pending === undefined) {
      pending = findApiKey(sql, keyId).finally(() => loading.delete(keyId));
      loading.set(keyId, pending);
    }
    let key;
    try {
      key = await pending;
    } catch (error) {
      throw toDomainError(error);
    }
    cache.delete(keyId);
    cache.set(keyId, { key, loadedAt: performance.now() });
    if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    return key;
  }

  function touch(keyId: string): void {
    const now = performance.now();
    const last = touched.get(keyId);
    if (last !== undefined && now - last < TOUCH_EVERY_MS) return;
    touched.set(keyId, now);
    touchApiKeys(sql, [keyId]).catch((error: unknown) => log.warn({ err: error, principal: `key:${keyId}` }, "could not record key use"));
  }

  async function byApiKey(token: string): Promise<Principal> {
    const parsed = parseApiKey(token);
    if (parsed === null) throw invalid();
    const key = await loadKey(parsed.keyId);
    if (key === null || key.revokeTime !== null || !secretMatches(parsed.secret, key.secretHash)) throw invalid();
    let revoked = accepted.get(key.keyId);
    if (revoked === undefined) accepted.set(key.keyId, (revoked = new AbortController()));
    touch(key.keyId);
    return { id: `key:${key.keyId}`, role: key.role, userId: null, expiresAtMs: null, revoked: revoked.signal };
  }

  async function byJwt(token: string): Promise<Principal> {
    if (options.jwt === null) throw invalid();
    let verified = verifiedTokens.get(token);
    if (verified !== undefined && Date.now() >= verified.expiresAtMs + CLOCK_TOLERANCE_S * 1000) {
      verifiedTokens.delete(token);
      verified = undefined;
    }
    if (verified === undefined) verified = await verifyJwt(options.jwt, token);
    return {
      id: `user:${verified.userId}`,
      role: "writer",
      userId: verified.userId,
      expiresAtMs: verified.expiresAtMs + CLOCK_TOLERANCE_S * 1000,
      revoked: null,
    };
  }

  async function verifyJwt(verify: JwtVerifier, token: string): Promise<VerifiedJwt> {
    let verified;
    try {
      verified = await verify(token);
    } catch (error) {
      // The reason only: jose's errors carry the token's claims, which are personal data.
      log.debug({ reason: error instanceof Error ? error.message : String(error) }, "JWT rejected");
      throw invalid();
    }
    verifiedTokens.set(token, verified);
    if (verifiedTokens.size > CACHE_ENTRIES) verifiedTokens.delete(verifiedTokens.keys().next().value!);
    return verified;
  }

  function byCertificate(peer: PeerCertificate | null): Principal {
    for (const name of peer?.names ?? []) {
      const role = certificateRoles.get(name);
      if (role !== undefined) return { id: `cert:${name}`, role, userId: null, expiresAtMs: null, revoked: null };
    }
    throw new DomainError("CREDENTIALS_MISSING", "this call needs a credential: send `authorization: Bearer <API key or JWT>`");
  }

  return {
    async authenticate(authorization, peer) {
      if (options.mode === "off") return ANONYMOUS;
      if (authorization === null || authorization === "") return byCertificate(peer);
      const match = /^Bearer +(\S+)\s*$/i.exec(authorization);
      if (match === null) throw invalid();
      const token = match[1]!;
      return token.startsWith(API_KEY_PREFIX) ? byApiKey(token) : byJwt(token);
    },
    close() {
      clearInterval(revocationTimer);
    },
  };
}

function invalid(): DomainError {
  return new DomainError("CREDENTIALS_INVALID", "the credential is not valid (malformed, unknown, revoked or expired)");
}
