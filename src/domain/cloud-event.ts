/**
 * The CloudEvents 1.0 form of an event, in the JSON event format
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

/** Holds one event in the CloudEvents 1.0 JSON format; attributes in the order they are written. */
export interface CloudEvent<Data = unknown> {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: "application/json";
  data: Data;
  sessionid: string;
  userid: string;
  seq: number;
  cursor: string;
  recordid: string;
  receivetime: string;
  performerid?: string;
  hash: string;
}

/** What an event contributes, already in wire form: times as RFC 3339 UTC, the cursor encoded. */
export interface CloudEventFields<Data = unknown> {
  eventId: string;
  userId: string;
  sessionId: string;
  seq: number;
  recordId: string;
  type: string;
  eventTime: string;
  receiveTime: string;
  source: string;
  performerId: string;
  payload: Data;
  hash: string;
  cursor: string;
}

/** Makes every exported `source` a URI reference, as CloudEvents requires: prefix + the percent-encoded source. */
export const SOURCE_PREFIX = "/sessionmanager/";

/**
 * Builds the CloudEvent of an event; `performerid` only when set. Shared by
 * `session-manager export` / prune archives (src/service/cloud-events.ts)
 * and the review console's download (web/lib/cloud-events.ts), so both write
 * the same bytes. No Node APIs: it runs in the browser too.
 */
export function cloudEventOf<Data>(event: CloudEventFields<Data>): CloudEvent<Data> {
  return {
    specversion: "1.0",
    id: event.eventId,
    source: SOURCE_PREFIX + encodePathSegment(event.source),
    type: event.type,
    subject: event.sessionId,
    time: event.eventTime,
    datacontenttype: "application/json",
    data: event.payload,
    sessionid: event.sessionId,
    userid: event.userId,
    seq: event.seq,
    cursor: event.cursor,
    recordid: event.recordId,
    receivetime: event.receiveTime,
    ...(event.performerId === "" ? {} : { performerid: event.performerId }),
    hash: event.hash,
  };
}

/** Percent-encodes what RFC 3986 does not allow in a path segment (`pchar`), as UTF-8. */
export function encodePathSegment(text: string): string {
  const encoder = new TextEncoder();
  return text.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@]/gu, (char) =>
    Array.from(encoder.encode(char), (byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`).join(""),
  );
}
