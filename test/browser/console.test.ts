/**
 * The review console (issue 11) in a real browser: Debian's headless
 * Chromium (playwright-core) opens /ui/ on the service itself (auth
 * required, an API key minted for the test), signs in, lists sessions seeded
 * through the RPCs, shows a timeline, verifies its hash chain with WebCrypto
 * (and names the broken seq after a stored event is tampered with in SQL),
 * toggles is_training_data once for a double click, downloads the export's
 * CloudEvents lines, and follows new events live.
 *
 * It runs on its own database: tampering would otherwise break the shared
 * database's chains for other tests, and the unfiltered list is then exactly
 * the sessions seeded here.
 */
import { readFile } from "node:fs/promises";
import { createClient, type Client } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createConnectTransport } from "@connectrpc/connect-node";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { exportEvents } from "../../src/service/export.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { mintKey, sendCredential } from "../support/credentials.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const SCREENSHOTS = new URL("../../docs/", import.meta.url).pathname;

let db: IsolatedDatabase;
let app: App;
let baseUrl: string;
let browser: Browser;
let key: string;
let client: Client<typeof SessionManagerService>;
/** Requests the pages made anywhere but the service (there must be none). */
const foreignRequests: string[] = [];

const seeded = { active: "", paused: "", ended: "", lapsed: "" };
const users = {
  active: uniqueId("console-active"),
  paused: uniqueId("console-paused"),
  ended: uniqueId("console-ended"),
  lapsed: uniqueId("console-lapsed"),
};

beforeAll(async () => {
  db = await createIsolatedDatabase("sm_console");
  app = await startTestApp({ databaseUrl: db.url, auth: "required", watchHeartbeatMs: 500 });
  key = (await mintKey(app.sql, "writer")).token;
  baseUrl = `http://127.0.0.1:${app.port}`;
  client = createClient(SessionManagerService, createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [sendCredential(key)] }));

  // One that timed out idle (oldest: its deadline backdated in SQL, no sweeper runs), an ended
  // session, a paused one, an active one (newest).
  const lapsed = (await client.startSession({ recordId: uniqueId("rec"), userId: users.lapsed })).session!;
  await app.sql`update sessions set expire_time = now() - interval '1 minute' where session_id = ${lapsed.sessionId}`;
  seeded.lapsed = lapsed.sessionId;
  const ended = (await client.startSession({ recordId: uniqueId("rec"), userId: users.ended, metadata: { channel: "voice" }, performerId: "agent-1" })).session!;
  await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: ended.sessionId, type: "care.input.received", source: "speech-worker", performerId: "nurse-7", payload: { text: "héllo", confidence: 0.93 } });
  await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: ended.sessionId, type: "care.output.sent", source: "dialog", payload: { text: "hi there", tokens: [1, 2, 3] } });
  await client.endSession({ recordId: uniqueId("rec"), sessionId: ended.sessionId });
  seeded.ended = ended.sessionId;

  const paused = (await client.startSession({ recordId: uniqueId("rec"), userId: users.paused })).session!;
  await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: paused.sessionId, type: "care.note", source: "nurse-app", payload: { note: "break" } });
  await client.pauseSession({ recordId: uniqueId("rec"), sessionId: paused.sessionId });
  seeded.paused = paused.sessionId;

  const active = (await client.startSession({ recordId: uniqueId("rec"), userId: users.active, metadata: { channel: "chat" } })).session!;
  await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: active.sessionId, type: "care.input.received", source: "chat", payload: { text: "first" } });
  seeded.active = active.sessionId;

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await app?.stop();
  await db?.drop();
});

/** A fresh page (own sessionStorage), signed in with the test's key unless told otherwise. */
async function openConsole(path = "/ui/", signIn = true): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(`${baseUrl}/`) && !url.startsWith("blob:") && !url.startsWith("data:")) foreignRequests.push(url);
  });
  await page.goto(`${baseUrl}${path}`);
  if (signIn) {
    await page.getByLabel("API key or JWT").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  return page;
}

async function eventSeqs(page: Page): Promise<string[]> {
  return page.locator("ol.timeline li.event").evaluateAll((els) => els.map((el) => `${el.getAttribute("data-seq")} ${el.querySelector(".type")!.textContent}`));
}

async function storedTimeline(sessionId: string): Promise<string[]> {
  const { events } = await client.listSessionEvents({ sessionId, pageSize: 1000 });
  return events.map((e) => `${e.seq} ${e.type}`);
}

describe("serving /ui/", () => {
  it("serves index.html for every /ui/ path with no-cache and an ETag, hashed assets for a year, and a same-origin CSP", async () => {
    const index = await fetch(`${baseUrl}/ui/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    expect(index.headers.get("content-security-policy")).toContain("connect-src 'self'");
    const etag = index.headers.get("etag")!;
    const html = await index.text();
    expect((await fetch(`${baseUrl}/ui/`, { headers: { "if-none-match": etag } })).status).toBe(304);
    const deep = await fetch(`${baseUrl}/ui/sessions/${seeded.ended}`);
    expect(await deep.text()).toBe(html);

    const script = /src="(\/ui\/assets\/main-[\w-]+\.js)"/.exec(html)![1]!;
    const js = await fetch(`${baseUrl}${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect((await fetch(`${baseUrl}/ui/assets/main-nope.js`)).status).toBe(404);
    const bare = await fetch(`${baseUrl}/ui`, { redirect: "manual" });
    expect([bare.status, bare.headers.get("location")]).toEqual([308, "/ui/"]);
    // The other plain endpoints still answer.
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
  });
});

describe("the review console in Chromium", () => {
  it("shows UNAUTHENTICATED for a wrong key, then lists the sessions with their states after signing in", async () => {
    const page = await openConsole("/ui/", false);
    await page.getByLabel("API key or JWT").fill("smk_01ARZ3NDEKTSV4RRFFQ69G5FAV_not-a-real-secret");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectText(page, "[role=alert]", "UNAUTHENTICATED");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key or JWT").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();

    const rows = page.locator("table.sessions tbody tr");
    await rows.nth(3).waitFor();
    const listed: string[][] = [];
    for (const row of await rows.all()) listed.push((await row.locator("td").allTextContents()).map((t) => t.trim()));
    // Newest first: active, paused, ended.
    const counts = await app.sql<{ session_id: string; n: number }[]>`
      select session_id, count(*)::int as n from session_events where session_id in ${app.sql([seeded.active, seeded.paused, seeded.ended, seeded.lapsed])} group by session_id`;
    const events = (id: string) => String(counts.find((row) => row.session_id === id)!.n);
    expect(listed.map((cells) => [cells[0], cells[1], cells[2], cells[4], cells[6], cells[7], cells[8]])).toEqual([
      [seeded.active, users.active, "active", "open", events(seeded.active), "", "no"],
      [seeded.paused, users.paused, "paused", "open", events(seeded.paused), "", "no"],
      [seeded.ended, users.ended, "ended", expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/), events(seeded.ended), "client", "no"],
      // Lapsed but not yet recorded: reported ended by idle timeout, at its deadline.
      [seeded.lapsed, users.lapsed, "ended", expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/), events(seeded.lapsed), "idle timeout", "no"],
    ]);
    expect(await page.getByText("Loading the console").count()).toBe(0);
    await page.screenshot({ path: `${SCREENSHOTS}console-list.png` });

    // Filters: user and state.
    await page.getByLabel("User id").fill(users.paused);
    await page.getByLabel("State").selectOption("paused");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/state=paused/);
    await expectText(page, "[role=status]", "1 session on this page");
    expect(await page.locator("table.sessions tbody tr td:first-child").allTextContents()).toEqual([seeded.paused]);
    await page.getByLabel("State").selectOption("active");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/state=active/);
    await expectText(page, "[role=status]", "0 sessions on this page");

    // The link of a row opens its timeline.
    await page.goto(`${baseUrl}/ui/`);
    await page.getByRole("link", { name: seeded.ended }).click();
    await page.waitForURL(`${baseUrl}/ui/sessions/${seeded.ended}`);
    await page.locator("ol.timeline li.event").first().waitFor();
    await page.context().close();
  });

  it("pages with next page and previous page", async () => {
    const userId = uniqueId("console-pager");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = (await client.startSession({ recordId: uniqueId("rec"), userId })).session!;
      await client.endSession({ recordId: uniqueId("rec"), sessionId: s.sessionId });
      ids.unshift(s.sessionId);
    }
    const page = await openConsole(`/ui/?user=${userId}&size=2`);
    const shown = () => page.locator("table.sessions tbody tr td:first-child").allTextContents();
    await expectText(page, "[role=status]", "2 sessions on this page");
    expect(await shown()).toEqual(ids.slice(0, 2));
    await page.getByRole("button", { name: "Next page" }).click();
    await expectText(page, "[role=status]", "1 session on this page");
    expect(await shown()).toEqual(ids.slice(2));
    expect(await page.getByRole("button", { name: "Next page" }).isDisabled()).toBe(true);
    await page.getByRole("button", { name: "Previous page" }).click();
    await expectText(page, "[role=status]", "2 sessions on this page");
    expect(await shown()).toEqual(ids.slice(0, 2));
    await page.context().close();
  });

  it("shows every event of a timeline in seq order, lifecycle events apart, verifies the chain, and names a tampered seq", async () => {
    const page = await openConsole(`/ui/sessions/${seeded.ended}`);
    await page.locator("[data-chain=true]").waitFor();
    expect(await eventSeqs(page)).toEqual(await storedTimeline(seeded.ended));
    expect(await eventSeqs(page)).toEqual(["1 session.started", "2 care.input.received", "3 care.output.sent", "4 session.ended"]);
    expect(await page.locator("li.event.lifecycle").evaluateAll((els) => els.map((el) => el.getAttribute("data-seq")))).toEqual(["1", "4"]);
    await expectText(page, ".chain", "Chain verified (4 events)");
    // The payload opens from its <details>.
    const second = page.locator("#seq-2");
    expect(await second.locator("pre").isVisible()).toBe(false);
    await second.locator("summary").click();
    expect(JSON.parse(await second.locator("pre").textContent() ?? "")).toEqual({ text: "héllo", confidence: 0.93 });
    expect(await second.textContent()).toContain("performer nurse-7");
    await page.screenshot({ path: `${SCREENSHOTS}console-timeline.png`, fullPage: true });

    // A deep link focuses and highlights its event.
    await page.goto(`${baseUrl}/ui/sessions/${seeded.ended}#seq-3`);
    await page.locator("#seq-3.highlighted").waitFor();
    // The tsconfig has no "dom" lib: reach the document through globalThis, as page.ts does.
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document.activeElement?.id)).toBe("seq-3");

    // Tamper with stored event 2 as a superuser would (bypassing the append-only triggers).
    await db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update session_events set payload = '{"text": "edited"}' where session_id = ${seeded.ended} and seq = 2`;
    });
    await page.reload();
    await page.locator("[data-chain=false]").waitFor();
    await expectText(page, ".chain", "Chain broken at seq 2");
    expect(await page.locator("li.event.broken").getAttribute("data-seq")).toBe("2");
    await page.context().close();
  });

  it("writes one session.updated for a double click on the training-data toggle", async () => {
    const page = await openConsole(`/ui/sessions/${seeded.paused}`);
    const toggle = page.getByRole("button", { name: "Mark as training data" });
    await toggle.waitFor();
    const updates: string[] = [];
    page.on("request", (r) => {
      if (r.url().endsWith("/UpdateSession")) updates.push(r.postData() ?? "");
    });
    // Two clicks in the same task: the second lands before any re-render could disable the button.
    await toggle.evaluate((button) => {
      const b = button as unknown as { click(): void };
      b.click();
      b.click();
    });
    await page.locator("[data-training=true]").waitFor();
    // The timeline reloads with the new event, and the chain still holds.
    await page.locator("ol.timeline li.event .type", { hasText: "session.updated" }).waitFor();
    await page.locator("[data-chain=true]").waitFor();
    await page.getByRole("button", { name: "Unmark as training data" }).waitFor();
    const [{ count }] = await db.sql<[{ count: number }]>`
      select count(*)::int as count from session_events where session_id = ${seeded.paused} and type = 'session.updated'`;
    expect(count).toBe(1);
    // The second click was ignored by the page itself, not only by the server (a same-value update writes nothing).
    expect(updates).toHaveLength(1);
    expect((await client.getSession({ sessionId: seeded.paused })).session!.isTrainingData).toBe(true);
    await page.context().close();
  });

  it("downloads the session as the export's CloudEvents JSON Lines", async () => {
    const page = await openConsole(`/ui/sessions/${seeded.paused}`);
    await page.locator("[data-chain=true]").waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: /Download CloudEvents/ }).click()]);
    expect(download.suggestedFilename()).toBe(`${seeded.paused}.jsonl`);
    const downloaded = await readFile((await download.path())!, "utf8");
    let exported = "";
    await exportEvents(app.sql, { kind: "session", sessionId: seeded.paused, trainingDataOnly: false }, {
      begin: async () => undefined,
      write: async (lines) => {
        exported += lines;
      },
    });
    expect(exported.split("\n").length).toBeGreaterThan(3);
    expect(downloaded).toBe(exported);
    await page.context().close();
  });

  it("follows an open session live: an appended event shows up within 2 s", async () => {
    const page = await openConsole(`/ui/sessions/${seeded.active}`);
    await page.locator("[data-live=following]").waitFor();
    await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: seeded.active, type: "care.live.check", source: "test", payload: { n: 1 } });
    await page.locator("ol.timeline li.event .type", { hasText: "care.live.check" }).waitFor({ timeout: 2_000 });
    await page.locator("[data-chain=true]").waitFor();
    expect(await eventSeqs(page)).toEqual(await storedTimeline(seeded.active));
    await page.context().close();
  });

  it("replays a timeline at 60x its recorded pace, steps event by event (also by keyboard), jumps to a time, and announces the position", async () => {
    // Five events 15 s apart by event_time (the replay's clock): 60 s recorded, 1 s at 60x.
    const t0 = Date.now() - 10 * 60_000;
    const at = (s: number) => timestampFromMs(t0 + s * 1000);
    const s = (await client.startSession({ recordId: uniqueId("rec"), userId: uniqueId("console-replay"), eventTime: at(0) })).session!;
    for (const [i, offset] of [15, 30, 45].entries()) {
      await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: s.sessionId, type: `care.step.${i + 1}`, source: "test", eventTime: at(offset), payload: { i } });
    }
    await client.endSession({ recordId: uniqueId("rec"), sessionId: s.sessionId, eventTime: at(60) });

    const page = await openConsole(`/ui/sessions/${s.sessionId}`);
    await page.locator("[data-chain=true]").waitFor();
    const status = page.locator(".replay [role=status]");
    expect(await status.getAttribute("aria-live")).toBe("polite");
    await expectText(page, ".replay [role=status]", "Replay off: all 5 events shown");
    await page.getByLabel("Speed").selectOption("60");

    // Log, in the page, when each event becomes the current one (ms after the click on Play).
    await page.evaluate(`(() => {
      const section = document.querySelector(".replay");
      window.replayLog = [];
      section.addEventListener("click", (e) => { if (e.target.textContent === "Play") window.replayStart = performance.now(); }, true);
      new MutationObserver(() => {
        const index = section.getAttribute("data-replay-index");
        const last = window.replayLog.at(-1);
        if (index !== "off" && (!last || last[0] !== Number(index))) window.replayLog.push([Number(index), performance.now() - window.replayStart]);
      }).observe(section, { attributes: true, attributeFilter: ["data-replay-index"] });
    })()`);
    const before = Date.now();
    await page.getByRole("button", { name: "Play", exact: true }).click();
    await page.locator(".replay[data-replay-playing=true]").waitFor();
    await expectText(page, ".replay [role=status]", "End of replay: event 5 of 5, #5 session.ended at +1 min 00 s");
    const elapsed = Date.now() - before;
    // 60 s recorded at 60x: the last event is due 1 s after Play (never earlier; generous upper bound).
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(4000);
    const log = (await page.evaluate("window.replayLog")) as [number, number][];
    // Revealed one by one, in order, each no earlier than its recorded offset / 60 (250 ms apart).
    expect(log.map(([index]) => index)).toEqual([0, 1, 2, 3, 4]);
    for (const [index, ms] of log) {
      expect(ms).toBeGreaterThanOrEqual(index * 250 - 5);
      expect(ms).toBeLessThan(index * 250 + 1500);
    }
    expect(await page.locator("ol.timeline li.event:visible").count()).toBe(5);
    expect(await page.locator("li.event[aria-current=step]").getAttribute("data-seq")).toBe("5");

    // Step back and forth with the buttons, then with the keyboard alone.
    await page.getByRole("button", { name: "Previous event" }).click();
    await expectText(page, ".replay [role=status]", "Paused: event 4 of 5, #4 care.step.3 at +45 s");
    expect(await page.locator("#seq-5").isHidden()).toBe(true);
    expect(await page.locator("li.event[aria-current=step]").getAttribute("data-seq")).toBe("4");
    await page.getByRole("button", { name: "Previous event" }).focus();
    await page.keyboard.press("Enter");
    await expectText(page, ".replay [role=status]", "event 3 of 5");
    await page.keyboard.press("ArrowLeft");
    await expectText(page, ".replay [role=status]", "event 2 of 5");
    await page.keyboard.press("Tab"); // to "Next event"
    await page.keyboard.press("Space");
    await expectText(page, ".replay [role=status]", "event 3 of 5");
    expect(await page.locator("ol.timeline li.event:visible").evaluateAll((els) => els.map((el) => el.getAttribute("data-seq")))).toEqual(["1", "2", "3"]);

    // Jump to a time: +50 s shows the events up to the one at +45 s.
    await page.getByLabel("Position").evaluate((input) => {
      const range = input as unknown as { value: string; dispatchEvent(e: unknown): boolean };
      range.value = "50000";
      range.dispatchEvent(new (globalThis as unknown as { Event: new (type: string, init: object) => unknown }).Event("input", { bubbles: true }));
    });
    await expectText(page, ".replay [role=status]", "Paused: event 4 of 5");
    expect(await page.getByLabel("Position").getAttribute("aria-valuetext")).toBe("+50 s of 1 min 00 s, event 4 of 5");
    await page.getByLabel("Position").focus();
    await page.keyboard.press("Home"); // the slider's own keys: back to the start
    await expectText(page, ".replay [role=status]", "Paused: event 1 of 5, #1 session.started at +0 ms");
    await page.getByRole("button", { name: "Next event" }).click();
    await page.getByRole("button", { name: "Next event" }).click();
    await expectText(page, ".replay [role=status]", "event 3 of 5");
    await page.locator(".replay").screenshot({ path: `${SCREENSHOTS}console-replay.png` });

    await page.getByRole("button", { name: "Show all events" }).click();
    await expectText(page, ".replay [role=status]", "Replay off: all 5 events shown");
    expect(await page.locator("ol.timeline li.event:visible").count()).toBe(5);
    await page.context().close();
  });

  it("updates the sessions list live: a session started elsewhere appears within 2 s, and its end shows", async () => {
    const page = await openConsole("/ui/");
    await expectText(page, "[role=status]", "sessions on this page");
    await page.locator("[data-live=following]").waitFor();
    const userId = uniqueId("console-live");
    // What the reader is typing into the filters survives the live refresh.
    await page.getByLabel("User id").fill("half-typed");
    await page.getByLabel("State").selectOption("paused");
    const started = (await client.startSession({ recordId: uniqueId("rec"), userId })).session!;
    const row = page.locator(`table.sessions tr[data-session-id="${started.sessionId}"]`);
    await row.waitFor({ timeout: 2_000 });
    expect(await page.getByLabel("User id").inputValue()).toBe("half-typed");
    expect(await page.getByLabel("State").inputValue()).toBe("paused");
    expect((await row.locator("td").nth(2).textContent())?.trim()).toBe("active");
    // The newest first.
    expect(await page.locator("table.sessions tbody tr").first().getAttribute("data-session-id")).toBe(started.sessionId);
    await client.endSession({ recordId: uniqueId("rec"), sessionId: started.sessionId });
    await row.locator("td", { hasText: "ended" }).waitFor({ timeout: 2_000 });

    // A user filter watches that user only; its sessions still show up.
    await page.goto(`${baseUrl}/ui/?user=${userId}`);
    await expectText(page, "[role=status]", "1 session on this page");
    await page.locator("[data-live=following]").waitFor();
    const second = (await client.startSession({ recordId: uniqueId("rec"), userId })).session!;
    await page.locator(`table.sessions tr[data-session-id="${second.sessionId}"]`).waitFor({ timeout: 2_000 });
    await expectText(page, "[role=status]", "2 sessions on this page");
    await client.endSession({ recordId: uniqueId("rec"), sessionId: second.sessionId });
    await page.context().close();
  });

  it("resumes the list's live feed from the last cursor after a drop: a session started meanwhile shows up", async () => {
    // The feed's head now, as a cursor (the first frame of a live-head stream carries it).
    const stop = new AbortController();
    let head = "";
    for await (const res of client.watchSessionEvents({ types: ["session.*"] }, { signal: stop.signal })) {
      if (res.frame.case !== undefined) {
        head = res.frame.value.cursor;
        break;
      }
    }
    stop.abort();
    expect(head).not.toBe("");

    const page = await openConsole("/ui/", false);
    const watches: { afterCursor?: string; types?: string[] }[] = [];
    let started = "";
    await page.route("**/WatchSessionEvents", async (route) => {
      // A Connect streaming request: one enveloped message (a 5-byte prefix, then JSON).
      watches.push(JSON.parse(route.request().postDataBuffer()!.subarray(5).toString("utf8")));
      if (watches.length === 1) {
        // The first stream sends one frame (caught up at `head`) and ends: a drop.
        const frame = (flags: number, json: string) => {
          const body = Buffer.from(json);
          const prefix = Buffer.alloc(5);
          prefix.writeUInt8(flags, 0);
          prefix.writeUInt32BE(body.length, 1);
          return Buffer.concat([prefix, body]);
        };
        await route.fulfill({
          status: 200,
          headers: { "content-type": "application/connect+json" },
          body: Buffer.concat([frame(0, JSON.stringify({ caughtUp: { cursor: head } })), frame(2, "{}")]),
        });
        return;
      }
      // Before the reconnect reaches the server, a session starts elsewhere: only a stream
      // resumed from `head` (not one from the live head) can deliver its session.started.
      if (started === "") started = (await client.startSession({ recordId: uniqueId("rec"), userId: uniqueId("console-drop") })).session!.sessionId;
      await route.continue();
    });
    await page.getByLabel("API key or JWT").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("[data-live=reconnecting]").waitFor();
    await expect.poll(() => started).not.toBe("");
    await page.locator(`table.sessions tr[data-session-id="${started}"]`).waitFor({ timeout: 5_000 });
    expect(watches[0]).toEqual({ types: ["session.*"] });
    expect(watches[1]).toEqual({ types: ["session.*"], afterCursor: head });
    await client.endSession({ recordId: uniqueId("rec"), sessionId: started });
    await page.context().close();
  });

  it("made no request to any other origin", () => {
    expect(foreignRequests).toEqual([]);
  });
});

/** Waits until `selector` contains `text`. */
async function expectText(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(selector, { hasText: text }).first().waitFor();
}
