/** Display helpers of the console: durations, the time axis and its gaps, JWT subjects. Pure: no DOM. */

/**
 * A duration for people: "0 ms", "850 ms", "4.2 s", "3 min 05 s",
 * "2 h 03 min", "3 d 4 h". Negative durations get a leading "-".
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "";
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) {
    return ms < 10_000 ? `${(Math.floor(ms / 100) / 10).toFixed(1)} s` : `${Math.floor(ms / 1000)} s`;
  }
  const totalS = Math.floor(ms / 1000);
  if (totalS < 3600) return `${Math.floor(totalS / 60)} min ${pad(totalS % 60)} s`;
  const totalMin = Math.floor(totalS / 60);
  if (totalMin < 24 * 60) return `${Math.floor(totalMin / 60)} h ${pad(totalMin % 60)} min`;
  const totalH = Math.floor(totalMin / 60);
  return `${Math.floor(totalH / 24)} d ${totalH % 24} h`;
}

function pad(n: number): string {
  return n.toString().padStart(2, "0");
}

/** One row of the timeline's time axis. */
export interface AxisRow {
  /** Time since the first event ("+0 ms" for it). */
  offset: string;
  /** When the pause before this event is long enough to show: its length, e.g. "3 min 05 s". */
  gapBefore: string | null;
}

/**
 * Lays out a timeline's time axis: each event's offset from the first, and
 * a gap marker before events that follow a pause of at least `gapMs` (so
 * long silences stand out without drawing them to scale). Times are epoch
 * ms in seq order; event times may go backwards (writers report them), in
 * which case the offset is negative and no gap is shown.
 */
export function layoutAxis(times: readonly number[], gapMs = 60_000): AxisRow[] {
  const first = times[0];
  return times.map((t, i) => {
    const previous = i === 0 ? undefined : times[i - 1];
    const gap = previous === undefined ? 0 : t - previous;
    return {
      offset: first === undefined ? "" : `${t - first < 0 ? "" : "+"}${formatDuration(t - first)}`,
      gapBefore: gap >= gapMs ? formatDuration(gap) : null,
    };
  });
}

/** A session's length: until its end, or until `now` while open. */
export function sessionDuration(startMs: number | null, endMs: number | null, nowMs: number): string {
  if (startMs === null) return "";
  return formatDuration((endMs ?? nowMs) - startMs);
}

/**
 * The `sub` claim of a JWT (not verified: only to prefill the user filter,
 * since a JWT may list its own user's sessions only), or null for anything
 * else, such as an API key.
 */
export function jwtSubject(token: string): string | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")), (c) => c.charCodeAt(0)));
    const claims: unknown = JSON.parse(json);
    const sub = claims !== null && typeof claims === "object" ? (claims as Record<string, unknown>).sub : undefined;
    return typeof sub === "string" ? sub : null;
  } catch {
    return null;
  }
}

/** "Bearer" credentials from a pasted value: trims it and drops a leading "Bearer ". */
export function normalizeToken(pasted: string): string {
  return pasted.trim().replace(/^bearer\s+/i, "").trim();
}

/** Sessions per page of the list, unless the query says `size` (1 to 1000). */
export const PAGE_SIZE = 50;

/** Parses the console's list filters from a query string (`user`, `state`, `size`). */
export function parseListQuery(search: string): { userId: string; state: string; pageSize: number } {
  const params = new URLSearchParams(search);
  const size = Number(params.get("size") ?? "");
  return {
    userId: params.get("user") ?? "",
    state: params.get("state") ?? "",
    pageSize: Number.isInteger(size) && size >= 1 && size <= 1000 ? size : PAGE_SIZE,
  };
}

/** The event id of a "#seq-12" fragment, or null. */
export function seqOfHash(hash: string): number | null {
  const m = /^#seq-(\d+)$/.exec(hash);
  return m ? Number(m[1]) : null;
}
