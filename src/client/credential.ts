/**
 * The credential: an API key or a JWT sent as `authorization: Bearer <token>`
 * on every request (README, "Credentials"), possibly from a function so that
 * it can be refreshed.
 */
import { createContextKey, type Interceptor } from "@connectrpc/connect";

/** What a credential function is told. */
export interface CredentialContext {
  /**
   * True when the service refused the token of the previous attempt
   * (UNAUTHENTICATED: e.g. a Watch stream whose JWT expired): return a
   * fresh token, not a cached one.
   */
  refresh: boolean;
}

/**
 * An API key or a JWT (sent as `authorization: Bearer <token>`), or a
 * function returning one (possibly async), called before every request and
 * every (re)connection of a stream. An empty string sends no header.
 */
export type Credential = string | ((context: CredentialContext) => string | Promise<string>);

/** Set on a call's context when the credential function must return a fresh token (see `CredentialContext.refresh`). */
export const REFRESH_CREDENTIAL = createContextKey(false, { description: "refresh the credential" });

/** Builds the interceptor that sends `credential` as `authorization: Bearer <token>`. */
export function credentialInterceptor(credential: Credential | undefined): Interceptor {
  return (next) => async (req) => {
    if (credential !== undefined) {
      const token = typeof credential === "string" ? credential : await credential({ refresh: req.contextValues.get(REFRESH_CREDENTIAL) });
      if (token !== "") req.header.set("authorization", `Bearer ${token}`);
    }
    return next(req);
  };
}
