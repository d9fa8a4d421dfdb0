/**
 * What makes the tail reader read: a poll timer (the fallback) and, unless
 * FEED_NOTIFY is off, LISTEN on the commit channel (see notifier.ts). Both
 * only call `wake`; neither carries data.
 */
import type { Logger } from "pino";
import type { Sql } from "../db/database.js";

/** Configures `createWakeUps`. */
export interface WakeUpOptions {
  sql: Sql;
  /** Poll interval while running, in ms. */
  pollMs: number;
  /** LISTEN channel, or null to poll only. */
  channel: string | null;
  /** Called on every tick, notification and (re)connect of the listener. */
  wake: () => void;
  log: Logger;
}

/** What `createWakeUps` returns: the tail reader starts it while it has subscribers, stops it when the last leaves. */
export type WakeUps = ReturnType<typeof createWakeUps>;

/**
 * Creates the wake-up sources, stopped. LISTEN runs on postgres.js's own
 * connection (outside the pool); once started it stays, since idle LISTEN
 * costs no queries. postgres.js re-LISTENs after a reconnect and calls
 * onlisten again: notifications sent meanwhile are lost, so that re-reads too.
 * LISTEN is asked for once: when it fails (PostgreSQL unreachable),
 * postgres.js keeps the callback and LISTENs again by itself once its
 * connection comes back (with its reconnect backoff, up to 20 s; polling
 * covers the wait). Asking again at every poll, as before, registered the
 * callback once more each time: after an outage every notification woke
 * the reader once per poll tick the outage lasted, and the list only grew.
 */
export function createWakeUps(options: WakeUpOptions) {
  const { sql, pollMs, channel, wake, log } = options;
  let poller: NodeJS.Timeout | null = null;
  let listening: Promise<{ unlisten(): Promise<void> } | null> | null = null;
  let listened = false;
  let closed = false;

  function listen(): void {
    if (channel === null || listening !== null || closed) return;
    const onListen = () => {
      listened = true;
      wake();
    };
    listening = sql.listen(channel, wake, onListen).catch((error: unknown) => {
      log.warn({ err: error }, "feed LISTEN failed; polling until postgres.js LISTENs again after it reconnects");
      return null;
    });
  }

  return {
    /** Starts polling, and LISTEN the first time. */
    start(): void {
      if (poller !== null || closed) return;
      poller = setInterval(wake, pollMs).unref();
      listen();
    },

    /** Stops polling; notifications keep calling `wake`, which ignores them while idle. */
    stop(): void {
      if (poller !== null) clearInterval(poller);
      poller = null;
    },

    /** Tells whether LISTEN has been in place (it stays true while postgres.js reconnects). */
    hasListened: (): boolean => listened,

    /**
     * Stops polling and LISTEN for good. After a first LISTEN that failed
     * there is no handle to UNLISTEN with: postgres.js keeps the callback
     * until `sql.end()`, and the tail reader ignores its wake-ups once closed.
     */
    close(): void {
      closed = true;
      if (poller !== null) clearInterval(poller);
      void listening?.then((handle) => handle?.unlisten()).catch(() => {});
    },
  };
}
