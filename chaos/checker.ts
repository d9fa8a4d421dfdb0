/**
 * The checker: reads the final database and compares it with the clients'
 * history (history.ts) and the rules in README ("Calling it", Idempotency;
 * "Session lifecycle"; "Audit and retention"). Every finding is an anomaly
 * with the rows and operations involved:
 *
 * - an ok'd operation is present exactly once (start, append, update: its
 *   event; pause, resume: its event or its request record; end: the end
 *   event it was answered with); an info'd one once or not at all; a failed
 *   one never;
 * - nothing unexpected: every event and request record comes from an
 *   operation of the matching kind on the same session, or is a system end
 *   (idle timeout, max duration, or superseded by a supersede start);
 * - per user, in feed order (tx_id, id): at most one open session at every
 *   moment; events other than updates only on the open session; pause only
 *   when active, resume only when paused, appends only when active;
 * - per session: seq dense from 1, started at seq 1 only, and the stored
 *   row equals what its events say (state, end reason, last_seq, last_hash,
 *   metadata, is_training_data): every state change has its event and every
 *   event its state change.
 */
import type { Sql } from "../src/db/database.js";
import { canonicalJson } from "../src/domain/json.js";
import type { JsonObject } from "../src/domain/json.js";
import type { Op, OpKind } from "./history.js";

/** One violation, with what is needed to find it again. */
export interface Anomaly {
  kind: string;
  detail: string;
  ops?: Op[];
  rows?: unknown[];
}

interface EventRow {
  user_id: string;
  session_id: string;
  seq: number;
  tx_id: string;
  id: string;
  event_id: string;
  record_id: string;
  type: string;
  payload: JsonObject;
  hash: string;
}

interface SessionRow {
  user_id: string;
  session_id: string;
  state: "active" | "paused" | "ended";
  end_reason: string | null;
  last_seq: number;
  last_hash: string;
  metadata: JsonObject;
  is_training_data: boolean;
}

interface RecordRow {
  user_id: string;
  record_id: string;
  session_id: string;
}

const LIFECYCLE_TYPE: Record<Exclude<OpKind, "append" | "heartbeat">, string> = {
  start: "session.started",
  pause: "session.paused",
  resume: "session.resumed",
  update: "session.updated",
  end: "session.ended",
};

const key = (userId: string, recordId: string) => `${userId}\u0000${recordId}`;

/** The rows the checks read. */
export interface DatabaseRows {
  events: EventRow[];
  sessions: SessionRow[];
  records: RecordRow[];
}

/**
 * Reads every event (in feed order), session and request record, in one
 * snapshot: the replicas' sweepers still end lapsed sessions while the
 * checker reads (separate statements once saw a session's end in its row
 * but not its session.ended event).
 */
export async function loadDatabase(pool: Sql): Promise<DatabaseRows> {
  return (await pool.begin("isolation level repeatable read read only", async (sql) => {
    const events = await sql<EventRow[]>`
      select user_id, session_id, seq::int as seq, tx_id::text as tx_id, id::text as id, event_id, record_id, type, payload, hash
      from session_events
      -- the table's columns, not the text aliases above (those would sort "1000" before "762")
      order by session_events.tx_id, session_events.id
    `;
    const sessions = await sql<SessionRow[]>`
      select user_id, session_id, state, end_reason, last_seq::int as last_seq, last_hash, metadata, is_training_data
      from sessions
    `;
    const records = await sql<RecordRow[]>`
      select user_id, record_id, session_id
      from request_records
    `;
    return { events, sessions, records };
  })) as DatabaseRows;
}

/** Checks the rows against `ops`; returns the anomalies (none when everything holds). */
export function checkDatabase(rows: DatabaseRows, ops: Op[]): Anomaly[] {
  return [
    ...checkOperations(ops, rows.events, rows.records),
    ...checkOrigins(ops, rows.events, rows.records),
    ...checkUserLogs(rows.events),
    ...checkSessions(rows.sessions, rows.events),
  ];
}

function group<T>(items: T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** Every ok'd operation present exactly once, info'd at most once, failed never. */
function checkOperations(ops: Op[], events: EventRow[], records: RecordRow[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const eventsByRecord = group(events, (event) => key(event.user_id, event.record_id));
  const recordsByKey = group(records, (record) => key(record.user_id, record.record_id));
  const eventsById = group(events, (event) => event.event_id);
  for (const op of ops) {
    if (op.kind === "heartbeat") continue;
    const found = [...(eventsByRecord.get(key(op.userId, op.recordId)) ?? []), ...(recordsByKey.get(key(op.userId, op.recordId)) ?? [])];
    const report = (kind: string, detail: string) => anomalies.push({ kind, detail: `${op.kind} ${op.recordId}: ${detail}`, ops: [op], rows: found });
    if (found.length > 1) report("duplicate", `its record_id is stored ${found.length} times`);
    if (op.outcome === "fail" && found.length > 0) report("failed-but-present", `answered ${op.error}, yet stored`);
    if (op.outcome !== "ok") continue;
    if (op.kind === "end") {
      const answered = eventsById.get(op.result?.eventId ?? "") ?? [];
      if (answered.length !== 1 || answered[0]!.type !== "session.ended" || answered[0]!.session_id !== op.sessionId) {
        report("lost", `answered with end event ${op.result?.eventId}, stored ${answered.length} times as ${answered.map((e) => `${e.type} of ${e.session_id}`).join(", ")}`);
      }
      continue;
    }
    if (found.length === 0) {
      report("lost", "answered ok, but nothing stored");
      continue;
    }
    const expectedId = op.result?.eventId;
    if (expectedId !== undefined && !found.some((row) => "event_id" in row && row.event_id === expectedId)) {
      report("wrong-answer", `answered with event ${expectedId}, stored ${found.map((row) => ("event_id" in row ? row.event_id : "request record")).join(", ")}`);
    }
    if (op.kind === "start" && op.result?.sessionId !== found[0]!.session_id) report("wrong-answer", `answered session ${op.result?.sessionId}, stored ${found[0]!.session_id}`);
  }
  return anomalies;
}

/** Nothing unexpected: every row comes from an operation that could have produced it. */
function checkOrigins(ops: Op[], events: EventRow[], records: RecordRow[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const opsByRecord = new Map(ops.filter((op) => op.recordId !== "").map((op) => [key(op.userId, op.recordId), op]));
  const startsBySession = new Map(events.filter((event) => event.type === "session.started").map((event) => [event.session_id, event]));
  for (const event of events) {
    const unexpected = (detail: string, op?: Op) => anomalies.push({ kind: "unexpected", detail: `event ${event.event_id} (${event.type}, session ${event.session_id} seq ${event.seq}, record ${event.record_id}): ${detail}`, ops: op ? [op] : [], rows: [event] });
    if (event.record_id.startsWith("system/")) {
      const [, reason, sessionId] = event.record_id.split("/");
      if (event.type !== "session.ended" || sessionId !== event.session_id) unexpected("a system record on something other than its session's end");
      else if (reason === "superseded") {
        const successor = startsBySession.get(String(event.payload.superseded_by));
        const start = successor && opsByRecord.get(key(successor.user_id, successor.record_id));
        if (start?.policy !== "supersede") unexpected(`superseded by ${String(event.payload.superseded_by)}, which no supersede start created`, start);
      } else if (reason !== "idle_timeout" && reason !== "max_duration") unexpected(`unknown system end reason ${reason}`);
      continue;
    }
    const op = opsByRecord.get(key(event.user_id, event.record_id));
    if (op === undefined) {
      unexpected("no operation has this record_id");
      continue;
    }
    const type = op.kind === "append" || op.kind === "heartbeat" ? "care.chaos." : LIFECYCLE_TYPE[op.kind];
    const typeMatches = op.kind === "append" ? event.type.startsWith(type) : event.type === type;
    if (!typeMatches || (op.kind !== "start" && op.sessionId !== event.session_id)) unexpected(`written for ${op.kind} on ${op.sessionId || "a new session"}`, op);
  }
  for (const record of records) {
    const op = opsByRecord.get(key(record.user_id, record.record_id));
    if (op === undefined || (op.kind !== "pause" && op.kind !== "resume") || op.sessionId !== record.session_id) {
      anomalies.push({ kind: "unexpected", detail: `request record ${record.record_id} of session ${record.session_id}: no pause or resume on that session has it`, ops: op ? [op] : [], rows: [record] });
    }
  }
  return anomalies;
}

/** Per user, in feed order: one open session at a time, and each event allowed by the state before it. */
function checkUserLogs(events: EventRow[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  for (const [userId, log] of group(events, (event) => event.user_id)) {
    let open: string | null = null;
    let paused = false;
    const started = new Set<string>();
    let previous: EventRow | null = null;
    for (const event of log) {
      const report = (detail: string) =>
        anomalies.push({ kind: "lifecycle", detail: `user ${userId}: ${event.type} of ${event.session_id} seq ${event.seq} at ${event.tx_id}:${event.id} ${detail}`, rows: [previous, event] });
      switch (event.type) {
        case "session.started":
          if (open !== null) report(`while ${open} is still open (two open sessions)`);
          open = event.session_id;
          paused = false;
          started.add(event.session_id);
          break;
        case "session.ended":
          if (event.session_id !== open) report(`but the open session is ${open ?? "none"} (ended twice, or never open)`);
          else open = null;
          break;
        case "session.updated":
          if (!started.has(event.session_id)) report("before the session started");
          break;
        case "session.paused":
        case "session.resumed":
        default: {
          if (event.session_id !== open) {
            report(`but the open session is ${open ?? "none"}`);
            break;
          }
          if (event.type === "session.paused" && paused) report("but it is already paused");
          if (event.type === "session.resumed" && !paused) report("but it is not paused");
          if (!event.type.startsWith("session.") && paused) report("while it is paused");
          if (event.type === "session.paused") paused = true;
          if (event.type === "session.resumed") paused = false;
        }
      }
      previous = event;
    }
  }
  return anomalies;
}

/** Per session: seq dense from 1, and the row is what its events say. */
function checkSessions(sessions: SessionRow[], events: EventRow[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const bySession = group(events, (event) => event.session_id);
  for (const session of sessions) {
    const log = [...(bySession.get(session.session_id) ?? [])].sort((a, b) => a.seq - b.seq);
    const report = (detail: string) => anomalies.push({ kind: "state", detail: `session ${session.session_id} of ${session.user_id}: ${detail}`, rows: [session] });
    const seqs = log.map((event) => event.seq);
    if (seqs.some((seq, i) => seq !== i + 1)) report(`seq not dense from 1: ${seqs.join(",")}`);
    if (log[0]?.type !== "session.started") {
      report(`has no session.started at seq 1 (first event ${log[0]?.type ?? "none"})`);
      continue;
    }
    if (log.slice(1).some((event) => event.type === "session.started")) report("started more than once");
    const startPayload = log[0].payload;
    let state: SessionRow["state"] = "active";
    let endReason: string | null = null;
    let metadata = (startPayload.metadata as JsonObject | undefined) ?? {};
    let training = startPayload.is_training_data === true;
    for (const event of log) {
      if (event.type === "session.paused") state = "paused";
      if (event.type === "session.resumed") state = "active";
      if (event.type === "session.ended") {
        state = "ended";
        endReason = String(event.payload.end_reason).replace(/^END_REASON_/, "").toLowerCase();
      }
      if (event.type === "session.updated") {
        const changes = event.payload.changes as { metadata?: { new: JsonObject }; is_training_data?: { new: boolean } };
        if (changes.metadata) metadata = changes.metadata.new;
        if (changes.is_training_data) training = changes.is_training_data.new;
      }
    }
    const last = log.at(-1)!;
    const derived = { state, end_reason: endReason, last_seq: last.seq, last_hash: last.hash, metadata: canonicalJson(metadata), is_training_data: training };
    const stored = { state: session.state, end_reason: session.end_reason, last_seq: session.last_seq, last_hash: session.last_hash, metadata: canonicalJson(session.metadata), is_training_data: session.is_training_data };
    for (const field of Object.keys(derived) as (keyof typeof derived)[]) {
      if (derived[field] !== stored[field]) report(`${field} is ${String(stored[field])} but its events say ${String(derived[field])}`);
    }
  }
  return anomalies;
}
