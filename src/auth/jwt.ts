/**
 * Verifies the JWTs of end users' browsers and apps with `jose`, against the
 * deployment's identity provider: its remote JWKS (JWT_JWKS_URL, fetched and
 * cached by jose) or a local PEM public key or JWKS file
 * (JWT_PUBLIC_KEY_FILE).
 *
 * Rules (RFC 7519 and RFC 8725, "JWT Best Current Practices"): an asymmetric
 * signature only (no `none`, no HMAC: a public key must never verify an HMAC
 * made with it), `iss` and `aud` when configured, `exp` required, `exp` and
 * `nbf` with CLOCK_TOLERANCE_S of leeway.
 */
import { readFileSync } from "node:fs";
import { createPublicKey, type KeyObject } from "node:crypto";
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JSONWebKeySet, type JWSAlgorithm, type JWTVerifyGetKey } from "jose";

/** Leeway for `exp` and `nbf` against clock skew between the issuer and this replica, in seconds. */
export const CLOCK_TOLERANCE_S = 30;

const ALGORITHMS: JWSAlgorithm[] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

/** Configures `createJwtVerifier`; exactly one of `jwksUrl` and `publicKeyFile`. */
export interface JwtOptions {
  jwksUrl: string | null;
  /** A PEM public key (SPKI) or a JWKS JSON file. */
  publicKeyFile: string | null;
  issuer: string | null;
  audience: string | null;
  /** The claim holding the caller's user_id. Default "sub". */
  userClaim: string;
}

/** A verified token: whose it is and until when. */
export interface VerifiedJwt {
  userId: string;
  /** The `exp` claim, in ms since the epoch. */
  expiresAtMs: number;
}

/** Verifies tokens; rejects (with jose's error, for the log only) anything not valid. */
export type JwtVerifier = (token: string) => Promise<VerifiedJwt>;

/**
 * Creates the verifier. The key file is read now, so a bad file stops the
 * server at start; the remote JWKS is fetched on first use and cached.
 */
export function createJwtVerifier(options: JwtOptions): JwtVerifier {
  const key = options.jwksUrl !== null ? createRemoteJWKSet(new URL(options.jwksUrl)) : readKeyFile(options.publicKeyFile!);
  return async (token) => {
    const { payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_TOLERANCE_S,
      requiredClaims: ["exp"],
      ...(options.issuer !== null ? { issuer: options.issuer } : {}),
      ...(options.audience !== null ? { audience: options.audience } : {}),
    });
    // RFC 7519 NumericDate: a number of seconds; JSON's 1e400 parses to Infinity, a token that would never expire.
    if (!Number.isFinite(payload.exp)) throw new Error("claim exp is not a finite NumericDate");
    const userId = payload[options.userClaim];
    if (typeof userId !== "string" || userId === "") throw new Error(`claim ${options.userClaim} is not a non-empty string`);
    return { userId, expiresAtMs: payload.exp! * 1000 };
  };
}

function readKeyFile(file: string): KeyObject | JWTVerifyGetKey {
  const text = readFileSync(file, "utf8");
  if (text.trimStart().startsWith("{")) return createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
  return createPublicKey(text);
}
