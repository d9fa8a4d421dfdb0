/**
 * The clients' history, as Jepsen keeps it: every operation is invoked once
 * and completes once as ok (the service answered with success), fail (the
 * service answered with an error that says nothing was written) or info
 * (indeterminate: every attempt timed out or lost its connection; the
 * operation may or may not have taken effect). Retries of one operation
 * reuse its record_id, so at most one of them can commit.
 */

/** The mutating RPCs the writers call. */
export type OpKind = "start" | "append" | "heartbeat" | "pause" | "resume" | "update" | "end";

/** One operation and its outcome. */
export interface Op {
  /** Position in the history (invocation order). */
  index: number;
  kind: OpKind;
  /** The writer ("w3", "storm-17"). */
  process: string;
  userId: string;
  /** The record_id of every attempt ("" for heartbeats, which carry none). */
  recordId: string;
  /** The session it acts on ("" for start). */
  sessionId: string;
  /** start: the conflict policy. */
  policy?: "reject" | "supersede";
  /** update: the values sent. */
  update?: { isTrainingData?: boolean; metadata?: Record<string, string> };
  /** ms since the run started. */
  invokeMs: number;
  completeMs: number | null;
  outcome: "ok" | "fail" | "info" | null;
  /** fail and info: the last error's code and reason, e.g. "FAILED_PRECONDITION ACTIVE_SESSION_EXISTS". */
  error: string;
  attempts: number;
  /** ok: what the service answered. start: the session; start, append, end: the event id. */
  result?: { sessionId?: string; eventId?: string };
}

/** Keeps the operations in invocation order. */
export interface History {
  readonly ops: Op[];
  /** Records an invocation and returns the operation to complete. */
  invoke(fields: Omit<Op, "index" | "invokeMs" | "completeMs" | "outcome" | "error" | "attempts">): Op;
  complete(op: Op, outcome: "ok" | "fail" | "info", details: { error?: string; attempts: number; result?: Op["result"] }): void;
}

/** Creates an empty history; times are ms since `startMs` (performance.now()). */
export function createHistory(startMs: number): History {
  const ops: Op[] = [];
  const now = () => Math.round(performance.now() - startMs);
  return {
    ops,
    invoke(fields) {
      const op: Op = { ...fields, index: ops.length, invokeMs: now(), completeMs: null, outcome: null, error: "", attempts: 0 };
      ops.push(op);
      return op;
    },
    complete(op, outcome, details) {
      op.outcome = outcome;
      op.completeMs = now();
      op.error = details.error ?? "";
      op.attempts = details.attempts;
      if (details.result !== undefined) op.result = details.result;
    },
  };
}
