/**
 * Credentials for tests: API keys minted straight into the test database
 * (as `keys create` does), and JWTs signed by a test identity provider whose
 * public key is written to a file for JWT_PUBLIC_KEY_FILE.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Interceptor } from "@connectrpc/connect";
import { CompactSign, SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWTPayload } from "jose";
import type { Role } from "../../src/auth/principal.js";
import type { Sql } from "../../src/db/database.js";
import { createKey } from "../../src/service/api-keys.js";
import { uniqueId } from "./app.js";

/** Mints an API key with `role` and returns its key id and secret. */
export async function mintKey(sql: Sql, role: Role): Promise<{ keyId: string; token: string }> {
  const { key, token } = await createKey(sql, uniqueId(`test-${role}`), role);
  return { keyId: key.keyId, token };
}

/** The issuer and audience the test identity provider puts in its tokens. */
export const TEST_ISSUER = "https://idp.test.example";
export const TEST_AUDIENCE = "session-manager-test";

/** A test identity provider: a key pair, its public key as a PEM and a JWKS file, and a signer. */
export interface TestIdentityProvider {
  publicKeyFile: string;
  jwksFile: string;
  /** Signs a token for `sub` valid for `ttlS` seconds; `claims` override anything (iss, aud, exp, nbf...). */
  sign(sub: string, options?: { ttlS?: number; claims?: JWTPayload; alg?: string; key?: CryptoKey }): Promise<string>;
  /** A key pair the server does not know: tokens it signs must be refused. */
  strangerKey: CryptoKey;
  /** Signs `payload` as written (JSON text that JSON.stringify could not produce, e.g. `"exp":1e400`). */
  signText(payload: string): Promise<string>;
}

/** Creates a test identity provider (ES256). */
export async function createTestIdentityProvider(): Promise<TestIdentityProvider> {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const stranger = await generateKeyPair("ES256");
  const dir = mkdtempSync(join(tmpdir(), "sm-idp-"));
  const publicKeyFile = join(dir, "public.pem");
  writeFileSync(publicKeyFile, await exportSPKI(publicKey));
  const jwksFile = join(dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: "ES256", use: "sig", kid: "test" }] }));
  return {
    publicKeyFile,
    jwksFile,
    strangerKey: stranger.privateKey,
    async sign(sub, { ttlS = 300, claims = {}, alg = "ES256", key = privateKey } = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ sub, iss: TEST_ISSUER, aud: TEST_AUDIENCE, iat: now, exp: now + ttlS, ...claims })
        .setProtectedHeader({ alg, kid: "test" })
        .sign(key);
    },
    signText(payload) {
      return new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: "ES256", kid: "test", typ: "JWT" }).sign(privateKey);
    },
  };
}

/** A client interceptor that sends `authorization: <value>` (`Bearer <token>` unless `raw`). */
export function sendCredential(token: string, raw = false): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", raw ? token : `Bearer ${token}`);
    return next(req);
  };
}

/** Builds an unsigned (`alg: none`) token for `sub`, as an attacker would. */
export function unsignedToken(sub: string): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  return `${encode({ alg: "none", typ: "JWT" })}.${encode({ sub, iss: TEST_ISSUER, aud: TEST_AUDIENCE, exp: now + 300 })}.`;
}
