/**
 * The session hash chain, recomputed in the browser with WebCrypto
 * (`crypto.subtle.digest`), exactly as README "Audit and retention" and
 * src/domain/chain.ts define it:
 *
 * hash(event) = lowercase hex SHA-256 of the RFC 8785 canonical JSON (`jcs`)
 * of {v: 1, previous_hash, event_id, user_id, session_id, seq, record_id,
 * type, event_time, receive_time, source, performer_id, payload}, times as
 * RFC 3339 UTC with milliseconds, previous_hash "" for seq 1. Links written
 * before the chain used RFC 8785 were hashed with `canonicalJson` (array-index
 * keys first, in numeric order); either form is accepted for a link.
 *
 * Pure (no DOM): runs in Node 24 too, where test/web checks it against
 * src/domain/chain.ts.
 */

/** One event as the chain sees it (a plain copy of the RPC's SessionEvent). */
export interface ChainEvent {
  eventId: string;
  userId: string;
  sessionId: string;
  seq: number;
  recordId: string;
  type: string;
  /** RFC 3339 UTC with milliseconds (Date#toISOString). */
  eventTime: string;
  receiveTime: string;
  source: string;
  performerId: string;
  payload: unknown;
  hash: string;
  /** The server sent the payload empty (too deep to decode): this event cannot be checked here. */
  payloadWithheld: boolean;
}

/** RFC 8785 canonical JSON, as src/domain/json.ts `jcs` writes it (keys sorted by UTF-16 code units, array-index keys included). */
export function jcs(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  const members = Object.entries(value).filter(([, v]) => v !== undefined);
  members.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${members.map(([k, v]) => `${JSON.stringify(k)}:${jcs(v)}`).join(",")}}`;
}

/** The chain's serialization before RFC 8785, as src/domain/json.ts `canonicalJson` writes it (array-index keys first, in numeric order). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** The canonical text an event's link is the SHA-256 of (`serialize`: `jcs`, or `canonicalJson` for links written before RFC 8785). */
export function chainText(previousHash: string, event: ChainEvent, serialize: (value: unknown) => string = jcs): string {
  return serialize({
    v: 1,
    previous_hash: previousHash,
    event_id: event.eventId,
    user_id: event.userId,
    session_id: event.sessionId,
    seq: event.seq,
    record_id: event.recordId,
    type: event.type,
    event_time: event.eventTime,
    receive_time: event.receiveTime,
    source: event.source,
    performer_id: event.performerId,
    payload: event.payload,
  });
}

/** Lowercase hex SHA-256 of `text` as UTF-8, with WebCrypto. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Computes an event's link from the previous link ("" for seq 1). */
export function chainHash(previousHash: string, event: ChainEvent): Promise<string> {
  return sha256Hex(chainText(previousHash, event));
}

/** The outcome of `verifyChain`. */
export type ChainReport =
  | { ok: true; events: number }
  /** `seq`: the first event that fails (missing, altered, or one past the log's end). */
  | { ok: false; seq: number; problem: string }
  /** The chain held up to `seq - 1`; `seq`'s payload was withheld, so the rest cannot be checked here. */
  | { ok: "unknown"; seq: number; problem: string };

/**
 * Checks one session's events (in seq order) against their chain and the
 * session's `last_seq` (the RPC does not expose `last_hash`, so a dropped
 * tail is found by count, as `session-manager verify` does with both).
 */
export async function verifyChain(events: readonly ChainEvent[], lastSeq: number): Promise<ChainReport> {
  let previous = "";
  for (const [index, event] of events.entries()) {
    if (event.seq !== index + 1) return { ok: false, seq: index + 1, problem: `event seq ${index + 1} is missing (found ${event.seq})` };
    if (event.payloadWithheld) {
      return { ok: "unknown", seq: event.seq, problem: "the payload was withheld by the server (nested too deeply); verify with session-manager verify" };
    }
    const linked = event.hash === (await chainHash(previous, event)) || event.hash === (await sha256Hex(chainText(previous, event, canonicalJson)));
    if (!linked) return { ok: false, seq: event.seq, problem: "hash does not match the event's content and the previous link" };
    previous = event.hash;
  }
  if (events.length !== lastSeq) return { ok: false, seq: events.length + 1, problem: `session says last_seq ${lastSeq}, log has ${events.length} events` };
  return { ok: true, events: events.length };
}
