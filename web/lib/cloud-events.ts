/**
 * A session's events as CloudEvents 1.0 JSON Lines, byte for byte what
 * `session-manager export --session <id>` writes (src/service/cloud-events.ts,
 * which uses Node's Buffer; this port uses TextEncoder so it runs in the
 * browser). test/web checks the two give the same lines.
 */
import type { ChainEvent } from "./chain.js";

/** One event in the CloudEvents JSON format; the attribute order matches the export's. */
export interface ConsoleCloudEvent {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: "application/json";
  data: unknown;
  sessionid: string;
  userid: string;
  seq: number;
  cursor: string;
  recordid: string;
  receivetime: string;
  performerid?: string;
  hash: string;
}

/** What the export puts before the percent-encoded source. */
export const SOURCE_PREFIX = "/sessionmanager/";

/** Percent-encodes what RFC 3986 does not allow in a path segment (`pchar`). */
export function encodePathSegment(text: string): string {
  const encoder = new TextEncoder();
  return text.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@]/gu, (char) =>
    Array.from(encoder.encode(char), (byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`).join(""),
  );
}

/** Maps an event (with its feed cursor) to a CloudEvent; `performerid` only when set. */
export function toCloudEvent(event: ChainEvent & { cursor: string }): ConsoleCloudEvent {
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

/** JSON Lines, each line ending with "\n", as the export writes them. */
export function toJsonLines(events: readonly (ChainEvent & { cursor: string })[]): string {
  return events.map((event) => `${JSON.stringify(toCloudEvent(event))}\n`).join("");
}
