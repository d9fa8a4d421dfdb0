/**
 * The auth interceptor: authenticates every call except health and
 * reflection and checks its role, before validation and before any database
 * work of the RPC (a refused call writes nothing). It runs inside the access
 * interceptor, so refusals are logged and mapped like any error, and it puts
 * the principal in the call's context values for the handlers (src/auth/guard.ts)
 * and the access log.
 */
import type { Interceptor } from "@connectrpc/connect";
import { DomainError } from "../domain/errors.js";
import { PEER_CERTIFICATE, type Authenticator } from "./authenticator.js";
import { PRINCIPAL, requiredAccess, roleAllows } from "./principal.js";

/** Creates the interceptor; pass the replica's authenticator. */
export function createAuthInterceptor(auth: Authenticator): Interceptor {
  return (next) => async (req) => {
    const access = requiredAccess(req.service.typeName, req.method.name);
    if (access === "public") return next(req);
    const principal = await auth.authenticate(req.header.get("authorization"), req.contextValues.get(PEER_CERTIFICATE));
    req.contextValues.set(PRINCIPAL, principal);
    if (!roleAllows(principal.role, access)) {
      throw new DomainError("ROLE_NOT_ALLOWED", `role ${principal.role} may not call ${req.method.name} (needs ${access})`, {
        role: principal.role,
        required: access,
      });
    }
    return next(req);
  };
}
