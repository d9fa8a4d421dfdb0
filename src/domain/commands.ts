/**
 * The mutating requests as plain data, their fingerprints (AIP-155) and the
 * checks the proto cannot express. Optional fields are null when not given.
 */
import { createHash } from "node:crypto";
import { DomainError, invalidRequest } from "./errors.js";
import { canonicalJson, checkJsonObject, type JsonObject } from "./json.js";

/** Caps `metadata` at 16 KiB of JSON. */
export const MAX_METADATA_BYTES = 16 * 1024;
/** Caps `payload` at 64 KiB of JSON. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
const RESERVED_TYPE_PREFIX = "session.";

/**
 * StartSession as plain data. A null `eventTime` records the receive time, a
 * null `idleTimeoutMs` takes the server's default, a null `maxDurationMs` sets no limit.
 */
export interface StartCommand {
  recordId: string;
  userId: string;
  performerId: string;
  eventTime: Date | null;
  idleTimeoutMs: number | null;
  maxDurationMs: number | null;
  metadata: JsonObject;
  isTrainingData: boolean;
  conflictPolicy: "reject" | "supersede";
}

/** EndSession as plain data; a null `eventTime` records the receive time. */
export interface EndCommand {
  recordId: string;
  sessionId: string;
  performerId: string;
  eventTime: Date | null;
}

/** PauseSession's or ResumeSession's request; `requestHash` includes the method, so one record_id cannot serve both. */
export interface PauseResumeCommand {
  recordId: string;
  sessionId: string;
}

/** Holds an UpdateSession request: only the fields named in the mask are set. */
export interface UpdateCommand {
  recordId: string;
  sessionId: string;
  metadata?: JsonObject;
  isTrainingData?: boolean;
}

/**
 * AppendSessionEvent as plain data; a null `eventTime` records the receive
 * time. `type` may not start with "session." (checkAppend).
 */
export interface AppendCommand {
  recordId: string;
  sessionId: string;
  type: string;
  eventTime: Date | null;
  source: string;
  performerId: string;
  payload: JsonObject;
}

/**
 * Fingerprints a mutating request (everything but its record_id), so a retry
 * can be told apart from a reuse of the idempotency key (AIP-155).
 */
export function requestHash<T extends { recordId: string }>(method: string, command: T): string {
  const { recordId: _ignored, ...rest } = command;
  return createHash("sha256").update(canonicalJson({ method, ...rest })).digest("base64url");
}

/**
 * Classifies a request by what its record_id already recorded (AIP-155):
 * "new" if the key is unused, "retry" if it recorded this same request.
 *
 * @throws DomainError RECORD_ID_REUSED if the key recorded a different request.
 */
export function classifyRequest(existing: { recordId: string; requestHash: string } | null, hash: string): "new" | "retry" {
  if (existing === null) return "new";
  if (existing.requestHash !== hash) {
    throw new DomainError("RECORD_ID_REUSED", "record_id was already used for a different request", {
      record_id: existing.recordId,
    });
  }
  return "retry";
}

/** Checks the parts of a StartSession request that the proto cannot express. */
export function checkStart(command: StartCommand): void {
  checkJsonObject("metadata", command.metadata, MAX_METADATA_BYTES);
}

/** Checks the parts of an UpdateSession request that the proto cannot express. */
export function checkUpdate(command: UpdateCommand): void {
  if (command.metadata === undefined && command.isTrainingData === undefined) {
    throw invalidRequest("update_mask", "names no field to update");
  }
  if (command.metadata !== undefined) checkJsonObject("session.metadata", command.metadata, MAX_METADATA_BYTES);
}

/** Checks the parts of an AppendSessionEvent request that the proto cannot express. */
export function checkAppend(command: AppendCommand): void {
  if (command.type.startsWith(RESERVED_TYPE_PREFIX)) {
    throw new DomainError("RESERVED_EVENT_TYPE", `type: types starting with "${RESERVED_TYPE_PREFIX}" are reserved for lifecycle events`, {
      field: "type",
    });
  }
  checkJsonObject("payload", command.payload, MAX_PAYLOAD_BYTES);
}
