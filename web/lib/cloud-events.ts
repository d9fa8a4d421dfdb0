/**
 * A session's events as CloudEvents 1.0 JSON Lines, byte for byte what
 * `session-manager export --session <id>` writes: both build each line with
 * src/domain/cloud-event.ts (test/web checks the two give the same lines).
 */
import { cloudEventOf } from "../../src/domain/cloud-event.js";
import type { ChainEvent } from "./chain.js";

/** JSON Lines, each line ending with "\n", as the export writes them. */
export function toJsonLines(events: readonly (ChainEvent & { cursor: string })[]): string {
  return events.map((event) => `${JSON.stringify(cloudEventOf(event))}\n`).join("");
}
