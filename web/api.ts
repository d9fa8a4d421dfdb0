/** The console's connect-web client: same origin, Connect protocol (JSON), the credential sent by an interceptor. */
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { SessionManagerService } from "../gen/sessionmanager/v1/session_manager_service_pb.js";

const TOKEN_KEY = "session-manager-console:token";

/** The credential kept for this tab (sessionStorage: gone when the tab closes). */
export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

const bearer: Interceptor = (next) => (req) => {
  const token = storedToken();
  if (token !== null) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

export type Api = Client<typeof SessionManagerService>;

/** The client every view uses. */
export const api: Api = createClient(
  SessionManagerService,
  createConnectTransport({ baseUrl: location.origin, useBinaryFormat: false, interceptors: [bearer] }),
);

/** An error as the console shows it. */
export interface ShownError {
  code: string;
  message: string;
  reason: string | null;
  /** The credential was refused or missing: the console asks to sign in again. */
  unauthenticated: boolean;
}

export function showError(error: unknown): ShownError {
  const ce = ConnectError.from(error);
  const info = ce.findDetails(ErrorInfoSchema)[0];
  return {
    code: codeName(ce.code),
    message: ce.rawMessage,
    reason: info?.reason ?? null,
    unauthenticated: ce.code === Code.Unauthenticated,
  };
}

/** "UNAUTHENTICATED", "PERMISSION_DENIED", ... as the gRPC spec spells them. */
export function codeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export function isAbort(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Canceled;
}

/** A record id for one intent of the user (AIP-155): random, allowed characters only, works without a secure context. */
export function newRecordId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
