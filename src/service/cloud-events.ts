/**
 * Maps stored events to CloudEvents 1.0 in the JSON event format
 * (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md).
 *
 * Context attributes:
 *   - `id`: the event_id; `type`: the event type; `subject`: the session_id.
 *   - `source`: "/sessionmanager/" + the event's source component, a URI
 *     reference (e.g. "/sessionmanager/session_manager" for lifecycle events,
 *     "/sessionmanager/speech-worker"). Characters outside RFC 3986 `pchar`
 *     are percent-encoded, so id + source is unique as the spec requires.
 *   - `time`: event_time, RFC 3339 in UTC (ms precision, as stored).
 *   - `datacontenttype`: "application/json"; `data`: the payload object.
 * Extension attributes (lowercase alphanumerics, per the spec's naming rule):
 *   `sessionid`, `userid`, `seq` (integer), `cursor` (the feed cursor, as
 *   WatchSessionEvents returns it), `recordid`, `receivetime` (RFC 3339),
 *   `performerid` (only when set) and `hash` (the event's link in its
 *   session's hash chain, lowercase hex SHA-256; see src/domain/chain.ts).
 */
import { encodeCursor } from "../domain/cursor.js";
import type { JsonObject } from "../domain/json.js";
import type { SessionEvent } from "../domain/session.js";

/** Holds one event in the CloudEvents 1.0 JSON format. */
export interface CloudEvent {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: "application/json";
  data: JsonObject;
  sessionid: string;
  userid: string;
  seq: number;
  cursor: string;
  recordid: string;
  receivetime: string;
  performerid?: string;
  hash: string;
}

/** Makes every exported `source` a URI reference, as CloudEvents requires: prefix + the percent-encoded source. */
export const SOURCE_PREFIX = "/sessionmanager/";

/** Maps a stored event to a CloudEvent with the attributes this file's header lists; `performerid` only when set. */
export function toCloudEvent(event: SessionEvent): CloudEvent {
  return {
    specversion: "1.0",
    id: event.eventId,
    source: SOURCE_PREFIX + encodePathSegment(event.source),
    type: event.type,
    subject: event.sessionId,
    time: event.eventTime.toISOString(),
    datacontenttype: "application/json",
    data: event.payload,
    sessionid: event.sessionId,
    userid: event.userId,
    seq: event.seq,
    cursor: encodeCursor(event.position),
    recordid: event.recordId,
    receivetime: event.receiveTime.toISOString(),
    ...(event.performerId === "" ? {} : { performerid: event.performerId }),
    hash: event.hash,
  };
}

/** Percent-encodes what RFC 3986 does not allow in a path segment (`pchar`). */
function encodePathSegment(text: string): string {
  return text.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@]/gu, (char) =>
    Array.from(Buffer.from(char, "utf8"), (byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`).join(""),
  );
}
