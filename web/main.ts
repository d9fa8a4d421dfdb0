/**
 * The review console (issue 11), served by the service at /ui/ and bundled
 * by esbuild (src/transport/console.ts). preact + htm, no JSX step. Routes by
 * location.pathname:
 *
 *   /ui/                 sign in, then the sessions list (?user=&state=)
 *   /ui/sessions/<id>    one session's timeline (#seq-12 links an event)
 *
 * Every call goes through connect-web (api.ts); the pure parts (chain check,
 * export lines, time axis) are in lib/ with unit tests in test/web.
 */
import { html } from "htm/preact";
import { render } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { EndReason, SessionState, type Session } from "../gen/sessionmanager/v1/session_pb.js";
import { api, isAbort, newRecordId, showError, storeToken, storedToken, type ShownError } from "./api.js";
import { verifyChain, type ChainReport } from "./lib/chain.js";
import { toJsonLines } from "./lib/cloud-events.js";
import { epochMs, fromEventMessage, isLifecycle, mergeEvents, type ConsoleEvent } from "./lib/events.js";
import { PAGE_SIZE, formatDuration, jwtSubject, layoutAxis, normalizeToken, parseListQuery, seqOfHash, sessionDuration } from "./lib/format.js";
import { SPEEDS, advance, delayToNext, indexAt, replayOffsets, replaySpan, type Speed } from "./lib/replay.js";

const BASE = "/ui/";
const SESSION_PATH = /^\/ui\/sessions\/(sess_[0-9A-HJKMNP-TV-Z]{26})\/?$/;

const STATE_NAMES: Record<number, string> = {
  [SessionState.ACTIVE]: "active",
  [SessionState.PAUSED]: "paused",
  [SessionState.ENDED]: "ended",
};
const END_REASON_NAMES: Record<number, string> = {
  [EndReason.UNSPECIFIED]: "",
  [EndReason.CLIENT]: "client",
  [EndReason.IDLE_TIMEOUT]: "idle timeout",
  [EndReason.SUPERSEDED]: "superseded",
  [EndReason.MAX_DURATION]: "max duration",
};

// ---------------------------------------------------------------- shell

function App() {
  const [token, setToken] = useState<string | null>(storedToken());
  const signOut = useCallback(() => {
    storeToken(null);
    setToken(null);
  }, []);
  const onUnauthenticated = signOut;
  const match = SESSION_PATH.exec(location.pathname);
  let main;
  if (token === null) main = html`<${SignIn} onSignedIn=${setToken} />`;
  else if (match) main = html`<${Timeline} sessionId=${match[1]!} onUnauthenticated=${onUnauthenticated} />`;
  else if (location.pathname === BASE || location.pathname === "/ui") main = html`<${SessionList} token=${token} onUnauthenticated=${onUnauthenticated} />`;
  else main = html`<h1>Not found</h1><p>No page at <code>${location.pathname}</code>. <a href=${BASE}>Sessions</a></p>`;
  return html`
    <header class="top">
      <a class="brand" href=${BASE}>Session review console</a>
      ${token !== null && html`<button type="button" class="link" onClick=${signOut}>Sign out</button>`}
    </header>
    <main id="main">${main}</main>
  `;
}

function ErrorBox({ error, what }: { error: ShownError | null; what: string }) {
  if (error === null) return null;
  return html`<div class="error" role="alert">
    <strong>${what} failed: ${error.code}</strong>
    ${error.reason !== null && html` (<code>${error.reason}</code>)`}
    <div>${error.message}</div>
    ${error.unauthenticated && html`<div>The credential was refused: sign in again.</div>`}
  </div>`;
}

// ---------------------------------------------------------------- sign in

function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [value, setValue] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const submit = (e: Event) => {
    e.preventDefault();
    const token = normalizeToken(value);
    if (token === "") {
      setProblem("Paste an API key (smk_…) or a JWT.");
      return;
    }
    storeToken(token);
    onSignedIn(token);
  };
  return html`<section aria-labelledby="signin-title" class="card narrow">
    <h1 id="signin-title">Sign in</h1>
    <p>The credential stays in this tab (sessionStorage) and is sent as <code>authorization: Bearer</code> with every call.</p>
    <form onSubmit=${submit}>
      <label for="token">API key or JWT</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck=${false} required
        value=${value} onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)}
        aria-describedby=${problem ? "token-problem" : undefined} aria-invalid=${problem ? "true" : undefined} />
      ${problem && html`<p id="token-problem" class="error" role="alert">${problem}</p>`}
      <button type="submit">Sign in</button>
    </form>
  </section>`;
}

// ---------------------------------------------------------------- sessions list

function SessionList({ token, onUnauthenticated }: { token: string; onUnauthenticated: () => void }) {
  const query = parseListQuery(location.search);
  const userId = query.userId !== "" ? query.userId : (jwtSubject(token) ?? "");
  const state = query.state;
  const pageSize = query.pageSize;
  // Page tokens of the pages before the current one, and the current one's.
  const [pages, setPages] = useState<string[]>([""]);
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [next, setNext] = useState("");
  const [error, setError] = useState<ShownError | null>(null);
  const [loading, setLoading] = useState(false);
  const current = pages[pages.length - 1]!;
  // Bumped by the live feed: fetches the first page again, without "Loading…".
  const [refresh, setRefresh] = useState(0);
  const [live, setLive] = useState<"off" | "following" | "reconnecting" | "unavailable">("off");
  const lastRefresh = useRef(refresh);

  useEffect(() => {
    let stale = false;
    const quiet = refresh !== lastRefresh.current;
    lastRefresh.current = refresh;
    if (!quiet) setLoading(true);
    if (!quiet) setError(null);
    api
      .listSessions({ userId, state: stateFilter(state), pageSize, pageToken: current })
      .then(
        (res) => {
          if (stale) return;
          setSessions(res.sessions);
          setNext(res.nextPageToken);
        },
        (e: unknown) => {
          if (stale) return;
          const shown = showError(e);
          setError(shown);
          setSessions(null);
        },
      )
      .finally(() => !stale && setLoading(false));
    return () => {
      stale = true;
    };
  }, [userId, state, pageSize, current, refresh]);

  // Live: on the first page, session lifecycle events (started, paused, ended, ...) of the
  // listed user (all users without a filter) fetch the page again, debounced.
  const onFirstPage = current === "";
  useEffect(() => {
    if (!onFirstPage) return;
    const controller = new AbortController();
    let debounce: ReturnType<typeof setTimeout> | undefined;
    const changed = () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => setRefresh((n) => n + 1), LIST_REFRESH_DEBOUNCE_MS);
    };
    void followLifecycle(userId, controller.signal, changed, setLive);
    return () => {
      controller.abort();
      clearTimeout(debounce);
      setLive("off");
    };
  }, [onFirstPage, userId]);

  const now = Date.now();
  // The filter fields are uncontrolled (defaultValue, selected): a live refresh re-renders the list
  // and must not reset what the reader is typing or choosing.
  return html`<section aria-labelledby="list-title">
    <h1 id="list-title">Sessions</h1>
    <form class="filters" method="get" action=${BASE}>
      <div>
        <label for="f-user">User id</label>
        <input id="f-user" name="user" defaultValue=${userId} pattern="[A-Za-z0-9._:\\-]*" maxlength="128" />
      </div>
      <div>
        <label for="f-state">State</label>
        <select id="f-state" name="state">
          ${["", "active", "paused", "ended"].map((option) => html`<option value=${option} selected=${option === state}>${option || "any"}</option>`)}
        </select>
      </div>
      ${pageSize !== PAGE_SIZE && html`<input type="hidden" name="size" value=${pageSize} />`}
      <button type="submit">Filter</button>
    </form>
    <${ErrorBox} error=${error} what="Listing sessions" />
    ${error?.unauthenticated && html`<button type="button" onClick=${onUnauthenticated}>Sign in again</button>`}
    <p class="muted live-list" data-live=${live}>${liveText(live)}</p>
    <p class="muted" role="status" aria-live="polite">${loading ? "Loading…" : sessions ? `${sessions.length} session${sessions.length === 1 ? "" : "s"} on this page, newest first` : ""}</p>
    ${sessions &&
    html`<div class="scroll">
      <table class="sessions">
        <caption class="sr-only">Sessions, newest first</caption>
        <thead><tr>
          <th scope="col">Session</th><th scope="col">User</th><th scope="col">State</th><th scope="col">Start</th>
          <th scope="col">End</th><th scope="col">Duration</th><th scope="col">Events</th><th scope="col">End reason</th><th scope="col">Training data</th>
        </tr></thead>
        <tbody>
          ${sessions.map((s) => {
            const start = epochMs(s.startTime);
            const end = epochMs(s.endTime);
            return html`<tr key=${s.sessionId} data-session-id=${s.sessionId}>
              <td><a href=${`${BASE}sessions/${s.sessionId}`}><code>${s.sessionId}</code></a></td>
              <td>${s.userId}</td>
              <td><span class=${`state state-${STATE_NAMES[s.state]}`}>${STATE_NAMES[s.state] ?? "unknown"}</span></td>
              <td>${when(start)}</td>
              <td>${end === null ? html`<span class="muted">open</span>` : when(end)}</td>
              <td>${sessionDuration(start, end, now)}</td>
              <td data-events>${String(s.lastSeq)}</td>
              <td>${END_REASON_NAMES[s.endReason] ?? ""}</td>
              <td>${s.isTrainingData ? "yes" : "no"}</td>
            </tr>`;
          })}
        </tbody>
      </table>
    </div>`}
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled=${pages.length === 1 || loading} onClick=${() => setPages(pages.slice(0, -1))}>Previous page</button>
      <button type="button" disabled=${next === "" || loading} onClick=${() => setPages([...pages, next])}>Next page</button>
    </nav>
  </section>`;
}

/** Quiet time after a lifecycle event before the list is fetched again (a burst is one fetch). */
const LIST_REFRESH_DEBOUNCE_MS = 150;

function liveText(live: "off" | "following" | "reconnecting" | "unavailable"): string {
  return live === "following" ? "Live: new and changed sessions show up by themselves." : live === "reconnecting" ? "Live updates reconnecting…" : live === "unavailable" ? "Live updates unavailable for this credential." : "";
}

/**
 * Watches `session.*` events (of `userId`, or of everyone when empty) from the
 * live head and calls `changed` for each; after a drop it resumes from the
 * last cursor of any frame (README "The event feed"), backing off up to 10 s.
 * Stops on `signal`, or for good on a refused credential or filter.
 */
async function followLifecycle(
  userId: string,
  signal: AbortSignal,
  changed: () => void,
  setLive: (live: "off" | "following" | "reconnecting" | "unavailable") => void,
): Promise<void> {
  let cursor = "";
  let retryMs = 500;
  while (!signal.aborted) {
    try {
      setLive("following");
      const request = { userId, types: ["session.*"], ...(cursor === "" ? {} : { afterCursor: cursor }) };
      for await (const res of api.watchSessionEvents(request, { signal })) {
        const frame = res.frame;
        if (frame.case === undefined) continue;
        if (cursor === "" && frame.case !== "event") {
          // The first frame of a fresh stream: from here on nothing is missed, so
          // catch up with whatever changed between the list's fetch and now.
          changed();
        }
        cursor = frame.value.cursor;
        retryMs = 500;
        if (frame.case === "event") changed();
      }
    } catch (e) {
      if (signal.aborted || isAbort(e)) return;
      const shown = showError(e);
      if (shown.unauthenticated || shown.code === "PERMISSION_DENIED" || shown.code === "INVALID_ARGUMENT") {
        setLive("unavailable");
        return;
      }
      if (shown.reason === "CURSOR_EXPIRED") cursor = "";
    }
    if (signal.aborted) return;
    setLive("reconnecting");
    await new Promise((r) => setTimeout(r, retryMs));
    retryMs = Math.min(retryMs * 2, 10_000);
  }
}

function stateFilter(state: string): SessionState {
  return state === "active" ? SessionState.ACTIVE : state === "paused" ? SessionState.PAUSED : state === "ended" ? SessionState.ENDED : SessionState.UNSPECIFIED;
}

function when(ms: number | null) {
  if (ms === null) return "";
  const iso = new Date(ms).toISOString();
  return html`<time datetime=${iso}>${iso.replace("T", " ").replace("Z", " UTC")}</time>`;
}

// ---------------------------------------------------------------- timeline

type Verification = { state: "running" } | { state: "done"; report: ChainReport };

function Timeline({ sessionId, onUnauthenticated }: { sessionId: string; onUnauthenticated: () => void }) {
  const [session, setSession] = useState<Session | null>(null);
  const [events, setEvents] = useState<ConsoleEvent[] | null>(null);
  const [lastSeq, setLastSeq] = useState(0);
  const [error, setError] = useState<ShownError | null>(null);
  const [verification, setVerification] = useState<Verification | null>(null);
  const [highlight, setHighlight] = useState<number | null>(seqOfHash(location.hash));
  const [live, setLive] = useState<"off" | "following" | "reconnecting">("off");

  const load = useCallback(async () => {
    setError(null);
    try {
      const got = await api.getSession({ sessionId });
      const all: ConsoleEvent[] = [];
      let pageToken = "";
      do {
        const page = await api.listSessionEvents({ sessionId, pageSize: 1000, pageToken });
        all.push(...page.events.map(fromEventMessage));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      setSession(got.session!);
      setLastSeq(Number(got.session!.lastSeq));
      setEvents(all);
    } catch (e) {
      setError(showError(e));
    }
  }, [sessionId]);

  useEffect(() => {
    void load();
  }, [load]);

  // Verify whenever the events change (first load, reload after a write, live events).
  useEffect(() => {
    if (events === null) return;
    let stale = false;
    setVerification({ state: "running" });
    void verifyChain(events, Math.max(lastSeq, events.at(-1)?.seq ?? 0)).then((report) => !stale && setVerification({ state: "done", report }));
    return () => {
      stale = true;
    };
  }, [events, lastSeq]);

  // Deep links: #seq-12 scrolls to and highlights event 12.
  useEffect(() => {
    const onHash = () => setHighlight(seqOfHash(location.hash));
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  useEffect(() => {
    if (highlight === null || events === null) return;
    const el = document.getElementById(`seq-${highlight}`);
    if (el) {
      el.scrollIntoView({ block: "center" });
      el.focus({ preventScroll: true });
    }
  }, [highlight, events === null]);

  // Live: follow an open session with WatchSessionEvents, resuming from the last cursor after a drop.
  const open = session !== null && session.state !== SessionState.ENDED;
  const lastCursor = useRef("");
  useEffect(() => {
    if (!open || events === null) return;
    if (lastCursor.current === "") lastCursor.current = events.at(-1)?.cursor ?? "";
    const controller = new AbortController();
    let retryMs = 500;
    (async () => {
      while (!controller.signal.aborted) {
        try {
          setLive("following");
          const request = lastCursor.current === "" ? { sessionId, fromBeginning: true } : { sessionId, afterCursor: lastCursor.current };
          for await (const res of api.watchSessionEvents(request, { signal: controller.signal })) {
            const frame = res.frame;
            if (frame.case === undefined) continue;
            lastCursor.current = frame.value.cursor;
            retryMs = 500;
            if (frame.case === "event") {
              const event = fromEventMessage(frame.value);
              setEvents((known) => (known === null ? [event] : mergeEvents(known, [event])));
              setLastSeq((n) => Math.max(n, event.seq));
              if (isLifecycle(event.type)) void api.getSession({ sessionId }).then((r) => setSession(r.session!), () => undefined);
            }
          }
        } catch (e) {
          if (controller.signal.aborted || isAbort(e)) return;
          const shown = showError(e);
          if (shown.unauthenticated) {
            setError(shown);
            setLive("off");
            return;
          }
        }
        if (controller.signal.aborted) return;
        setLive("reconnecting");
        await new Promise((r) => setTimeout(r, retryMs));
        retryMs = Math.min(retryMs * 2, 10_000);
      }
    })();
    return () => {
      controller.abort();
      setLive("off");
    };
  }, [open, sessionId, events === null]);

  const times = useMemo(() => (events ?? []).map((e) => Date.parse(e.eventTime)), [events]);
  const replay = useReplay(times);
  const replayIndex = replay.state?.index ?? null;
  useEffect(() => {
    if (replayIndex === null || events === null) return;
    const seq = events[replayIndex]?.seq;
    if (seq !== undefined) document.getElementById(`seq-${seq}`)?.scrollIntoView({ block: "nearest" });
  }, [replayIndex]);

  if (error && session === null) {
    return html`<${ErrorBox} error=${error} what="Loading the session" />
      ${error.unauthenticated && html`<button type="button" onClick=${onUnauthenticated}>Sign in again</button>`}
      <p><a href=${BASE}>Back to sessions</a></p>`;
  }
  if (session === null || events === null) return html`<p role="status">Loading session…</p>`;

  const start = epochMs(session.startTime);
  const end = epochMs(session.endTime);
  const axis = layoutAxis(times);
  const shownUpTo = replay.state === null ? events.length - 1 : replay.state.index;
  return html`<section aria-labelledby="tl-title">
    <p><a href=${BASE}>← Sessions</a></p>
    <h1 id="tl-title">Session <code>${session.sessionId}</code></h1>
    <dl class="facts">
      <div><dt>User</dt><dd>${session.userId}</dd></div>
      <div><dt>State</dt><dd><span class=${`state state-${STATE_NAMES[session.state]}`}>${STATE_NAMES[session.state]}</span></dd></div>
      <div><dt>Start</dt><dd>${when(start)}</dd></div>
      <div><dt>End</dt><dd>${end === null ? "open" : when(end)}</dd></div>
      <div><dt>Duration</dt><dd>${sessionDuration(start, end, Date.now())}</dd></div>
      ${session.endReason !== EndReason.UNSPECIFIED && html`<div><dt>End reason</dt><dd>${END_REASON_NAMES[session.endReason]}</dd></div>`}
      <div><dt>Events</dt><dd>${events.length}</dd></div>
      ${open && html`<div><dt>Live</dt><dd data-live=${live}>${live === "following" ? "following new events" : live === "reconnecting" ? "reconnecting…" : "off"}</dd></div>`}
    </dl>
    <${ErrorBox} error=${error} what="A call" />
    <div class="actions">
      <${ChainStatus} verification=${verification} />
      <${TrainingToggle} session=${session} onUpdated=${(s: Session) => {
        setSession(s);
        void load();
      }} />
      <button type="button" onClick=${() => download(session.sessionId, events)}>Download CloudEvents (.jsonl)</button>
    </div>
    <${ReplayControls} replay=${replay} events=${events} />
    <h2>Timeline</h2>
    <ol class="timeline">
      ${events.map((e, i) => {
        const row = axis[i]!;
        const hidden = i > shownUpTo;
        const current = replayIndex === i;
        return html`
          ${row.gapBefore !== null && html`<li class="gap" hidden=${hidden} aria-label=${`${row.gapBefore} without events`}><span>${row.gapBefore} later</span></li>`}
          <li key=${e.seq} id=${`seq-${e.seq}`} tabindex="-1" data-seq=${e.seq} hidden=${hidden} aria-current=${current ? "step" : undefined}
            class=${`event${isLifecycle(e.type) ? " lifecycle" : ""}${highlight === e.seq ? " highlighted" : ""}${brokenSeq(verification) === e.seq ? " broken" : ""}${current ? " replay-current" : ""}`}>
            <div class="event-head">
              <a class="seq" href=${`#seq-${e.seq}`} aria-label=${`Link to event ${e.seq}`}>#${e.seq}</a>
              <span class="type">${e.type}</span>
              <time datetime=${e.eventTime} title=${`received ${e.receiveTime}`}>${e.eventTime.replace("T", " ").replace("Z", " UTC")}</time>
              <span class="muted offset">${row.offset}</span>
            </div>
            <div class="event-meta">
              <span>source <code>${e.source}</code></span>
              ${e.performerId !== "" && html`<span>performer <code>${e.performerId}</code></span>`}
            </div>
            <details>
              <summary>Payload${e.payloadWithheld ? " (withheld by the server)" : ""}</summary>
              <pre>${JSON.stringify(e.payload, null, 2)}</pre>
            </details>
          </li>`;
      })}
    </ol>
  </section>`;
}

// ---------------------------------------------------------------- replay

interface ReplayState {
  /** The current event: it and every event before it are shown. */
  index: number;
  /** The replay clock: recorded ms since the first event (event_time). */
  position: number;
  playing: boolean;
}

interface Replay {
  state: ReplayState | null;
  offsets: number[];
  speed: Speed;
  setSpeed: (speed: Speed) => void;
  play: () => void;
  pause: () => void;
  step: (delta: number) => void;
  seek: (position: number) => void;
  stop: () => void;
}

/**
 * Plays a timeline back at `speed` times its recorded pace (event_time, see
 * lib/replay.ts). While playing, one timer at a time waits for the next
 * event (at most 250 ms, so the position slider moves through long gaps);
 * each tick recomputes the position from the wall clock since play started,
 * so timer lateness does not add up.
 */
function useReplay(times: readonly number[]): Replay {
  const offsets = useMemo(() => replayOffsets(times), [times]);
  const [speed, setSpeed] = useState<Speed>(10);
  const [state, setState] = useState<ReplayState | null>(null);
  // Bumped by play and seek: restarts the clock from the state's position.
  const [epoch, setEpoch] = useState(0);
  const stateRef = useRef(state);
  stateRef.current = state;
  const offsetsRef = useRef(offsets);
  offsetsRef.current = offsets;

  useEffect(() => {
    const start = stateRef.current;
    if (start === null || !start.playing) return;
    const startWall = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = () => {
      const offs = offsetsRef.current;
      const position = advance(offs, start.position, performance.now() - startWall, speed);
      const index = Math.max(start.index, indexAt(offs, position));
      const done = index >= offs.length - 1;
      setState({ index, position, playing: !done });
      if (done) return;
      timer = setTimeout(tick, Math.min(delayToNext(offs, index, position, speed) ?? 250, 250));
    };
    tick();
    return () => clearTimeout(timer);
  }, [state?.playing, speed, epoch]);

  const last = offsets.length - 1;
  return {
    state,
    offsets,
    speed,
    setSpeed,
    play: () => {
      const s = stateRef.current;
      setState(s === null || s.index >= last ? { index: 0, position: 0, playing: true } : { ...s, playing: true });
      setEpoch((n) => n + 1);
    },
    pause: () => setState((s) => s && { ...s, playing: false }),
    step: (delta) => {
      const s = stateRef.current;
      const from = s?.index ?? (delta > 0 ? -1 : last + 1);
      const index = Math.min(last, Math.max(0, from + delta));
      setState({ index, position: offsets[index] ?? 0, playing: false });
    },
    seek: (position) => {
      const p = Math.min(replaySpan(offsets), Math.max(0, position));
      setState((s) => ({ index: Math.max(0, indexAt(offsets, p)), position: p, playing: s?.playing ?? false }));
      setEpoch((n) => n + 1);
    },
    stop: () => setState(null),
  };
}

function ReplayControls({ replay, events }: { replay: Replay; events: ConsoleEvent[] }) {
  const { state, offsets, speed } = replay;
  const n = events.length;
  const span = replaySpan(offsets);
  const position = state?.position ?? span;
  const current = state === null ? undefined : events[state.index];
  const where = state === null || current === undefined ? "" : `event ${state.index + 1} of ${n}`;
  let status: string;
  if (state === null || current === undefined) status = `Replay off: all ${n} event${n === 1 ? "" : "s"} shown.`;
  else {
    const mode = state.playing ? `Playing at ${speed}x` : state.index >= n - 1 ? "End of replay" : "Paused";
    status = `${mode}: ${where}, #${current.seq} ${current.type} at +${formatDuration(offsets[state.index] ?? 0)}.`;
  }
  const onKey = (e: KeyboardEvent) => {
    // Keyboard stepping anywhere in the controls but the slider (which has its own arrow keys).
    if ((e.target as HTMLElement).tagName === "INPUT" || (e.target as HTMLElement).tagName === "SELECT") return;
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      replay.step(e.key === "ArrowLeft" ? -1 : 1);
    }
  };
  const atStart = state !== null && state.index <= 0;
  const atEnd = state !== null && state.index >= n - 1;
  return html`<section class="replay" aria-labelledby="replay-title" data-replay-index=${state === null ? "off" : String(state.index)}
      data-replay-playing=${String(state?.playing ?? false)}>
    <h2 id="replay-title">Replay</h2>
    <div class="replay-controls" role="group" aria-label="Replay controls" onKeyDown=${onKey}>
      ${state?.playing
        ? html`<button type="button" onClick=${replay.pause}>Pause</button>`
        : html`<button type="button" onClick=${replay.play} disabled=${n === 0}>${state === null || atEnd ? "Play" : "Resume"}</button>`}
      <span class="field">
        <label for="replay-speed">Speed</label>
        <select id="replay-speed" value=${String(speed)} onChange=${(e: Event) => replay.setSpeed(Number((e.target as HTMLSelectElement).value) as Speed)}>
          ${SPEEDS.map((s) => html`<option value=${String(s)}>${s}x</option>`)}
        </select>
      </span>
      <button type="button" aria-disabled=${atStart ? "true" : undefined} onClick=${() => replay.step(-1)}>Previous event</button>
      <button type="button" aria-disabled=${atEnd ? "true" : undefined} onClick=${() => replay.step(1)}>Next event</button>
      <span class="field grow">
        <label for="replay-position">Position</label>
        <input id="replay-position" type="range" min="0" max=${String(span)} step="any" value=${String(position)}
          aria-valuetext=${`+${formatDuration(position)} of ${formatDuration(span)}${where === "" ? "" : `, ${where}`}`}
          onInput=${(e: Event) => replay.seek(Number((e.target as HTMLInputElement).value))} />
        <span class="muted" aria-hidden="true">+${formatDuration(position)} / ${formatDuration(span)}</span>
      </span>
      <button type="button" class="secondary" onClick=${replay.stop} disabled=${state === null}>Show all events</button>
    </div>
    <p class="replay-status" role="status" aria-live="polite" aria-atomic="true">${status}</p>
    <p class="muted small">Plays the events at their recorded pace (event time), ${SPEEDS.map((s) => `${s}x`).join(", ")}; Left and Right arrows step while a control is focused.</p>
  </section>`;
}

function brokenSeq(v: Verification | null): number | null {
  return v?.state === "done" && v.report.ok === false ? v.report.seq : null;
}

function ChainStatus({ verification }: { verification: Verification | null }) {
  let body;
  if (verification === null || verification.state === "running") body = "Verifying the hash chain…";
  else if (verification.report.ok === true) body = html`<span class="ok">✔ Chain verified</span> (${verification.report.events} events)`;
  else if (verification.report.ok === false)
    body = html`<span class="bad">✘ Chain broken at seq ${verification.report.seq}</span>: ${verification.report.problem}.
      <a href=${`#seq-${verification.report.seq}`}>Show event ${verification.report.seq}</a>`;
  else body = html`<span class="warn">Chain not checked from seq ${verification.report.seq}</span>: ${verification.report.problem}.`;
  return html`<p class="chain" role="status" aria-live="polite" data-chain=${verification?.state === "done" ? String(verification.report.ok) : "running"}>${body}</p>`;
}

/**
 * Sets or clears is_training_data. One click is one intent with one record
 * id: a second click while the call runs does nothing, and a retry after a
 * failure sends the same record id, so the server writes at most once.
 */
function TrainingToggle({ session, onUpdated }: { session: Session; onUpdated: (s: Session) => void }) {
  const inFlight = useRef(false);
  const pending = useRef<{ recordId: string; target: boolean } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ShownError | null>(null);
  const click = async () => {
    if (inFlight.current) return;
    inFlight.current = true;
    setBusy(true);
    const intent = pending.current ?? { recordId: newRecordId("training"), target: !session.isTrainingData };
    pending.current = intent;
    try {
      const res = await api.updateSession({
        recordId: intent.recordId,
        session: { sessionId: session.sessionId, isTrainingData: intent.target },
        updateMask: { paths: ["is_training_data"] },
      });
      pending.current = null;
      setError(null);
      onUpdated(res.session!);
    } catch (e) {
      setError(showError(e));
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  };
  const target = pending.current?.target ?? !session.isTrainingData;
  const label = `${pending.current !== null && !busy ? "Retry: " : ""}${target ? "Mark as training data" : "Unmark as training data"}`;
  return html`<div class="training">
    <p>Training data: <strong data-training=${String(session.isTrainingData)}>${session.isTrainingData ? "yes" : "no"}</strong></p>
    <button type="button" onClick=${click} disabled=${busy} aria-busy=${busy ? "true" : undefined}>${busy ? "Saving…" : label}</button>
    <${ErrorBox} error=${error} what="Updating is_training_data" />
  </div>`;
}

function download(sessionId: string, events: ConsoleEvent[]): void {
  const blob = new Blob([toJsonLines(events)], { type: "application/x-ndjson" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = `${sessionId}.jsonl`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const root = document.getElementById("app")!;
root.replaceChildren(); // the static "Loading" placeholder
render(html`<${App} />`, root);
