/** Events written as the service writes them (reference hashes), and as the console receives them. */
import { chainHash as referenceHash } from "../../src/domain/chain.js";
import type { JsonObject } from "../../src/domain/json.js";
import type { SessionEvent } from "../../src/domain/session.js";
import { toEventMessage } from "../../src/transport/convert.js";
import { fromEventMessage, type ConsoleEvent } from "../../web/lib/events.js";

/** A session's events written as the service writes them, with reference hashes. */
export function storedSession(payloads: JsonObject[], options: { performer?: string; source?: string } = {}): SessionEvent[] {
  const events: SessionEvent[] = [];
  let previous = "";
  const base = Date.parse("2025-03-04T05:06:07.089Z");
  for (const [i, payload] of payloads.entries()) {
    const event: SessionEvent = {
      eventId: `evt_01JNQ4Z6T3V7W8X9Y0A1B2C3D${i}`,
      userId: "user-42",
      sessionId: "sess_01JNQ4Z6T3V7W8X9Y0A1B2C3D4",
      seq: i + 1,
      recordId: `rec-${i}`,
      requestHash: "ignored",
      type: i === 0 ? "session.started" : "care.input.received",
      eventTime: new Date(base + i * 1234),
      receiveTime: new Date(base + i * 1234 + 5),
      source: i === 0 ? "session_manager" : (options.source ?? "speech-worker"),
      performerId: i === 0 ? "" : (options.performer ?? ""),
      payload,
      hash: "",
      position: { txId: 1000n + BigInt(i), id: BigInt(i + 1) },
    };
    event.hash = referenceHash(previous, event);
    previous = event.hash;
    events.push(event);
  }
  return events;
}

/** The events as the console receives them over the RPC (through the server's own message mapping). */
export function asReceived(events: SessionEvent[]): ConsoleEvent[] {
  return events.map((e) => fromEventMessage(toEventMessage(e)));
}
