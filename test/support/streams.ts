/** Watch streams that tests hold open, and streams expected to fail. */
import type { SessionClient } from "./rpc.js";
import { waitFor } from "./wait.js";

/** A Watch stream held open until the test closes it. */
export interface OpenStream {
  /** Resolves once the stream sent its caught_up frame. */
  ready(): Promise<unknown>;
  /** Events the stream delivered so far. */
  events: string[];
  /** Cancels the stream and waits for it to end. */
  close(): Promise<void>;
}

/** Opens a Watch stream of `userId`'s events and collects their event ids. */
export function openStream(client: SessionClient, userId: string): OpenStream {
  const controller = new AbortController();
  const events: string[] = [];
  let caughtUp = false;
  const done = (async () => {
    try {
      for await (const frame of client.watchSessionEvents({ userId }, { signal: controller.signal })) {
        if (frame.frame.case === "caughtUp") caughtUp = true;
        if (frame.frame.case === "event") events.push(frame.frame.value.eventId);
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
  })();
  return {
    ready: () => waitFor(() => caughtUp, { message: "stream caught up" }),
    events,
    async close() {
      controller.abort();
      await done;
    },
  };
}

/** Reads a Watch stream to its end; rejects with its error (the first frames may arrive before it fails). */
export async function firstStreamError(client: SessionClient, request: Parameters<SessionClient["watchSessionEvents"]>[0]): Promise<void> {
  for await (const _frame of client.watchSessionEvents(request)) {
    // Only the error counts.
  }
}
