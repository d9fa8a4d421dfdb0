/**
 * A real browser (Debian's headless Chromium driven by playwright-core) on
 * ANOTHER origin than the service calls it with @connectrpc/connect-web, over
 * the Connect protocol (JSON) and gRPC-Web, with a JWT from a test identity
 * provider sent through an interceptor: unary calls, errors with their
 * ErrorInfo (another user's session, no credential), and a WatchSessionEvents stream with events, caught_up and a
 * heartbeat. A page from an origin that is not allowed gets no response.
 *
 * The page script (page.ts) is bundled with esbuild and served by a small
 * node:http server; a second such server on another port is the denied origin.
 */
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { SessionState } from "../../gen/sessionmanager/v1/session_pb.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { TEST_AUDIENCE, TEST_ISSUER, createTestIdentityProvider, mintKey, sendCredential, type TestIdentityProvider } from "../support/credentials.js";
import type { DeniedSummary, RunInput, RunSummary, SmokeApi, TransportName } from "./page.js";

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
const UNKNOWN_SESSION_ID = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>connect-web smoke</title></head>
<body><script src="/page.js"></script></body></html>`;

let app: App;
let baseUrl: string;
let pageServer: http.Server;
let deniedServer: http.Server;
let allowedOrigin: string;
let deniedOrigin: string;
let browser: Browser;
let idp: TestIdentityProvider;
let adminKey: string;

beforeAll(async () => {
  const bundle = await build({
    entryPoints: [new URL("./page.ts", import.meta.url).pathname],
    bundle: true,
    write: false,
    format: "iife",
    platform: "browser",
    target: "chrome120",
    logLevel: "silent",
  });
  const script = bundle.outputFiles[0]!.text;

  pageServer = await servePage(script);
  deniedServer = await servePage(script);
  allowedOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  deniedOrigin = `http://127.0.0.1:${(deniedServer.address() as AddressInfo).port}`;

  idp = await createTestIdentityProvider();
  app = await startTestApp({
    corsAllowedOrigins: [allowedOrigin],
    watchHeartbeatMs: 500,
    auth: "required",
    jwtPublicKeyFile: idp.publicKeyFile,
    jwtIssuer: TEST_ISSUER,
    jwtAudience: TEST_AUDIENCE,
  });
  adminKey = (await mintKey(app.sql, "admin")).token;
  baseUrl = `http://127.0.0.1:${app.port}`;

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await Promise.all([pageServer, deniedServer].map((s) => (s ? closeServer(s) : undefined)));
  await app?.stop();
});

describe.each<[string, TransportName]>([
  ["Connect protocol (JSON)", "connect"],
  ["gRPC-Web", "grpc-web"],
])("connect-web in Chromium from an allowed origin, %s", (_label, transport) => {
  it("starts, appends, gets, gets an ErrorInfo error and watches events, caught_up and a heartbeat", async () => {
    const page = await openPage(allowedOrigin);
    const serviceResponses: { url: string; allowOrigin: string | undefined }[] = [];
    page.on("response", (res) => {
      if (res.url().startsWith(baseUrl)) {
        serviceResponses.push({ url: res.url(), allowOrigin: res.headers()["access-control-allow-origin"] });
      }
    });
    const userId = uniqueId(`browser-${transport}`);
    const input: RunInput = {
      baseUrl,
      transport,
      token: await idp.sign(userId),
      userId,
      startRecordId: uniqueId("rec"),
      appendRecordId: uniqueId("rec"),
      unknownSessionId: UNKNOWN_SESSION_ID,
    };
    const summary: RunSummary = await page.evaluate((i) => (globalThis as unknown as { sessionManagerSmoke: SmokeApi }).sessionManagerSmoke.run(i), input);
    await page.close();

    expect(summary.origin).toBe(allowedOrigin);
    expect(summary.origin).not.toBe(baseUrl);

    expect(summary.started.userId).toBe(input.userId);
    expect(summary.started.sessionId).toMatch(/^sess_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(summary.started.state).toBe(SessionState.ACTIVE);
    expect(summary.started.eventSeq).toBe("1");
    expect(summary.started.eventType).toBe("session.started");

    expect(summary.appended).toEqual({ seq: "2", type: "care.input.received", payload: { text: "hello from the browser" } });

    expect(summary.got).toEqual({
      sessionId: summary.started.sessionId,
      lastSeq: "2",
      state: SessionState.ACTIVE,
      metadata: { channel: "browser" },
    });

    // A user-scoped caller gets the same answer for an unknown session as for another user's (AIP-211).
    expect(summary.error).toEqual({ code: "PermissionDenied", reason: "USER_NOT_ALLOWED", domain: "sessionmanager" });
    expect(summary.anonymous).toEqual({ code: "Unauthenticated", reason: "CREDENTIALS_MISSING", domain: "sessionmanager" });

    const { frames, endCode, timedOut } = summary.watch;
    expect(timedOut).toBe(false);
    expect(endCode).toBe("Canceled");
    const events = frames.filter((f) => f.kind === "event");
    expect(events.map((f) => [f.seq, f.type, f.sessionId])).toEqual([
      ["1", "session.started", summary.started.sessionId],
      ["2", "care.input.received", summary.started.sessionId],
    ]);
    const caughtUpAt = frames.findIndex((f) => f.kind === "caughtUp");
    expect(frames.filter((f) => f.kind === "caughtUp")).toHaveLength(1);
    expect(caughtUpAt).toBeGreaterThan(frames.indexOf(events[1]!));
    const heartbeats = frames.filter((f) => f.kind === "heartbeat");
    expect(heartbeats.length).toBeGreaterThanOrEqual(1);
    expect(frames.findIndex((f) => f.kind === "heartbeat")).toBeGreaterThan(caughtUpAt);
    for (const f of frames) expect(f.cursor).not.toBe("");

    // Every call went to the service's origin and was answered for the page's origin.
    expect(serviceResponses.map((r) => new URL(r.url).pathname).sort()).toEqual(
      [
        "AppendSessionEvent",
        "GetSession",
        "GetSession",
        "HeartbeatSession",
        "StartSession",
        "WatchSessionEvents",
      ].map((m) => `/sessionmanager.v1.SessionManagerService/${m}`),
    );
    for (const r of serviceResponses) expect(r.allowOrigin).toBe(allowedOrigin);
  });
});

describe("connect-web in Chromium from an origin not in CORS_ALLOWED_ORIGINS", () => {
  it.each<TransportName>(["connect", "grpc-web"])("fails %s calls before they reach the service", async (transport) => {
    const page = await openPage(deniedOrigin);
    const consoleErrors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    const userId = uniqueId(`denied-${transport}`);
    const summary: DeniedSummary = await page.evaluate(
      (i) => (globalThis as unknown as { sessionManagerSmoke: SmokeApi }).sessionManagerSmoke.denied(i),
      { baseUrl, transport, userId, startRecordId: uniqueId("rec") },
    );
    await page.close();

    expect(summary.origin).toBe(deniedOrigin);
    expect(summary.resolved).toBe(false);
    // fetch() rejects with a TypeError; connect-web wraps it as UNKNOWN.
    expect(summary.code).toBe("Unknown");
    expect(summary.causeName).toBe("TypeError");
    expect(summary.causeMessage).toBe("Failed to fetch");
    expect(consoleErrors.join("\n")).toContain("blocked by CORS policy");

    // The preflight failed, so the POST was never sent: the user has no session.
    const nodeClient = createClient(
      SessionManagerService,
      createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [sendCredential(adminKey)] }),
    );
    const listed = await nodeClient.listSessions({ userId });
    expect(listed.sessions).toEqual([]);
  });
});

async function openPage(origin: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => "sessionManagerSmoke" in globalThis);
  return page;
}

/** Serves the HTML at / and the bundle at /page.js on 127.0.0.1, port 0. */
async function servePage(script: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(HTML);
    } else if (req.url === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script);
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
