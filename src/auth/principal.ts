/**
 * Who is calling and what each RPC requires (README, "Credentials"). The
 * rules here are pure: src/auth/authenticator.ts turns a credential into a
 * Principal, src/auth/interceptor.ts applies `requiredAccess` before any
 * validation or database work, and the handlers (src/transport/routes.ts)
 * apply `checkUser` for callers scoped to one user.
 */
import { createContextKey } from "@connectrpc/connect";
import { DomainError } from "../domain/errors.js";

/** The roles of API keys and client certificates, weakest first. */
export const ROLES = ["reader", "writer", "admin"] as const;

/** Names a role: reader (reads and Watch), writer (reads and every mutation), admin (everything). */
export type Role = (typeof ROLES)[number];

/** What an RPC requires: nothing (health, reflection), or at least one role. */
export type Access = "public" | Role;

/** The caller of one RPC, as the access log and the handlers see it. */
export interface Principal {
  /**
   * Loggable, never secret: `key:<key id>` (API key), `user:<sub>` (JWT),
   * `cert:<name>` (client certificate) or `anonymous` (AUTH=off).
   */
  id: string;
  role: Role;
  /** For a JWT: the one user whose sessions and events this caller may touch. Null: any user. */
  userId: string | null;
  /**
   * When the credential stops being accepted (a JWT's `exp` plus the clock
   * tolerance), in ms since the epoch; open Watch streams end with
   * UNAUTHENTICATED then. Null: no expiry.
   */
  expiresAtMs: number | null;
  /** Aborts when the credential is revoked (API keys); open Watch streams end with UNAUTHENTICATED. Null: cannot be. */
  revoked: AbortSignal | null;
}

/** The principal of AUTH=off: every RPC, every user, and no per-principal stream limit. */
export const ANONYMOUS: Principal = { id: "anonymous", role: "admin", userId: null, expiresAtMs: null, revoked: null };

/**
 * Carries the call's principal from the auth interceptor to the handlers.
 * Its default denies everything, so a server assembled without the
 * interceptor fails closed.
 */
export const PRINCIPAL = createContextKey<Principal | null>(null, { description: "the authenticated caller" });

/**
 * What each SessionManagerService RPC requires, by method name. A method not
 * listed here (one added to the proto later) requires admin until it is.
 */
const SESSION_MANAGER_ACCESS: Record<string, Role> = {
  GetSession: "reader",
  ListSessions: "reader",
  ListSessionEvents: "reader",
  WatchSessionEvents: "reader",
  StartSession: "writer",
  EndSession: "writer",
  HeartbeatSession: "writer",
  PauseSession: "writer",
  ResumeSession: "writer",
  UpdateSession: "writer",
  AppendSessionEvent: "writer",
};

/** Services any caller may use without a credential: probes and `buf curl` need them. */
const PUBLIC_SERVICES = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

/** Returns what calling `method` of the service named `serviceTypeName` requires. */
export function requiredAccess(serviceTypeName: string, method: string): Access {
  if (PUBLIC_SERVICES.has(serviceTypeName)) return "public";
  if (serviceTypeName === "sessionmanager.v1.SessionManagerService") return SESSION_MANAGER_ACCESS[method] ?? "admin";
  return "admin";
}

/** Tells whether `role` includes `required` (admin > writer > reader). */
export function roleAllows(role: Role, required: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(required);
}

/**
 * Checks that a user-scoped caller acts on its own user: `userId` is the
 * user the request names or the owner of the session it addresses (null when
 * no such session exists). AIP-211: the same PERMISSION_DENIED whether or not
 * the session exists, so ids cannot be probed.
 *
 * @throws DomainError USER_NOT_ALLOWED.
 */
export function checkUser(principal: Principal, userId: string | null): void {
  if (principal.userId === null || principal.userId === userId) return;
  throw new DomainError("USER_NOT_ALLOWED", "this credential may only act on its own user's sessions and events");
}
