/**
 * Subscription filters: built from a WatchSessionEvents request, applied in
 * SQL by `readFeed` (catch-up) and in memory by the tail reader's fan-out.
 * Both must select the same events; `matchesFilter` mirrors the SQL.
 */
import type { FeedFilter } from "../db/feed-repository.js";
import type { SessionEvent } from "../domain/session.js";

/** Selects every event: the tail reader reads without a filter. */
export const EVERYTHING: FeedFilter = { userId: null, sessionId: null, types: [], typePrefixes: [] };

/** Holds the filter fields of a WatchSessionEvents request; empty means "any". */
export interface FilterQuery {
  userId: string;
  sessionId: string;
  /** Exact types, or prefixes written as "care.*". */
  types: string[];
}

/** Turns request fields into a filter: "care.*" becomes the prefix "care.". */
export function toFilter(query: FilterQuery): FeedFilter {
  const prefixes = query.types.filter((type) => type.endsWith(".*"));
  return {
    userId: query.userId === "" ? null : query.userId,
    sessionId: query.sessionId === "" ? null : query.sessionId,
    types: query.types.filter((type) => !type.endsWith(".*")),
    typePrefixes: prefixes.map((prefix) => prefix.slice(0, -1)),
  };
}

/**
 * Tells whether `event` passes `filter`, with the semantics of the SQL in
 * `readFeed`: equal user and session when set; when types or prefixes are
 * given, an exact type or a type starting with a prefix (SQL `like 'p%'`).
 */
export function matchesFilter(filter: FeedFilter, event: SessionEvent): boolean {
  if (filter.userId !== null && event.userId !== filter.userId) return false;
  if (filter.sessionId !== null && event.sessionId !== filter.sessionId) return false;
  if (filter.types.length === 0 && filter.typePrefixes.length === 0) return true;
  return filter.types.includes(event.type) || filter.typePrefixes.some((prefix) => event.type.startsWith(prefix));
}
