/** What both entry points (`index.ts` for Node, `browser.ts`) export besides `createSessionManagerClient`. */
export { Code } from "@connectrpc/connect";
export { REFRESH_CREDENTIAL, type Credential, type CredentialContext } from "./credential.js";
export {
  type CallOpts,
  type Mutation,
  type SessionManagerClient,
  type SessionManagerClientOptions,
  type TransportKind,
} from "./core.js";
export { SessionManagerError, codeName } from "./errors.js";
export { isConnectionError, isRetryable, type RetryOptions } from "./retry.js";
export { SessionEndedError, SessionHandle, type AppendOptions, type OpenSessionOptions, type SessionEnd } from "./session.js";
export { frameCursor, type WatchOptions, type WatchStream } from "./watch.js";
export { ConflictPolicy } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
export type { WatchSessionEventsResponse } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
export { EndReason, SessionState, type Session, type SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
