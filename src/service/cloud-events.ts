/**
 * Maps stored events to CloudEvents 1.0 (the format and its attributes:
 * src/domain/cloud-event.ts), for `session-manager export` and prune
 * archives.
 */
import { cloudEventOf, type CloudEvent } from "../domain/cloud-event.js";
import { encodeCursor } from "../domain/cursor.js";
import type { JsonObject } from "../domain/json.js";
import type { SessionEvent } from "../domain/session.js";

export type { CloudEvent } from "../domain/cloud-event.js";

/** Maps a stored event to its CloudEvent. */
export function toCloudEvent(event: SessionEvent): CloudEvent<JsonObject> {
  return cloudEventOf({
    ...event,
    eventTime: event.eventTime.toISOString(),
    receiveTime: event.receiveTime.toISOString(),
    cursor: encodeCursor(event.position),
  });
}
