/**
 * Slowloris over TLS: connections that dribble HTTP/1.1 headers (ALPN
 * http/1.1) or the HTTP/2 preface (ALPN h2) are closed within
 * HEADERS_TIMEOUT_MS, while an ordinary HTTPS client keeps getting answers.
 * In process (the replica helper's clients speak cleartext); the memory of
 * the same abuse is measured in connections.test.ts.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { startTestApp } from "../support/app.js";
import { waitFor } from "../support/wait.js";
import { SERVICE, UNKNOWN_SESSION_ID } from "./abuse-server.js";

const HEADERS_TIMEOUT_MS = 1_000;
/** The HTTP/1.1 check runs every HEADERS_TIMEOUT_MS, HTTP/2 adds a 1 s GOAWAY grace; doubled for a loaded machine. */
const CLOSED_WITHIN_MS = 2 * (2 * HEADERS_TIMEOUT_MS + 1_000);

let app: App;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "sm-abuse-tls-"));
  const [certFile, keyFile] = [join(dir, "cert.pem"), join(dir, "key.pem")];
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
  app = await startTestApp({ tlsCertFile: certFile, tlsKeyFile: keyFile, headersTimeoutMs: HEADERS_TIMEOUT_MS });
});

afterAll(async () => {
  await app?.stop();
});

/** Calls GetSession over HTTPS (Connect JSON, HTTP/1.1) and returns the HTTP status. */
function ordinaryCall(agent: https.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      { host: "127.0.0.1", port: app.port, path: `${SERVICE}/GetSession`, method: "POST", agent, rejectUnauthorized: false, headers: { "content-type": "application/json" } },
      (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode!));
      },
    );
    request.on("error", reject);
    request.end(JSON.stringify({ sessionId: UNKNOWN_SESSION_ID }));
  });
}

it("closes TLS connections that dribble HTTP/1.1 headers or the HTTP/2 preface, and keeps answering others", async () => {
  const kinds = {
    "http/1.1": Buffer.from(`POST ${SERVICE}/GetSession HTTP/1.1\r\nhost: 127.0.0.1\r\n${"x-slow: a\r\n".repeat(100)}`),
    h2: Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
  };
  const connections = await Promise.all(
    Array.from({ length: 100 }, async (_, i) => {
      const alpn = i % 2 === 0 ? "http/1.1" : "h2";
      const socket = tls.connect({ port: app.port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: [alpn] });
      await new Promise((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
      socket.on("error", () => {});
      socket.on("data", () => {});
      const entry = { alpn, socket, bytes: kinds[alpn as keyof typeof kinds], openedAt: performance.now(), closedAfterMs: null as number | null };
      socket.once("close", () => (entry.closedAfterMs = performance.now() - entry.openedAt));
      return entry;
    }),
  );
  expect(connections.map((entry) => entry.socket.alpnProtocol)).toEqual(connections.map((entry) => entry.alpn));
  let offset = 0;
  const dribble = setInterval(() => {
    for (const { socket, bytes } of connections) if (!socket.destroyed && offset < bytes.length) socket.write(bytes.subarray(offset, offset + 1));
    offset++;
  }, 50);
  const agent = new https.Agent({ keepAlive: true });
  const statuses: number[] = [];
  try {
    await waitFor(
      async () => {
        statuses.push(await ordinaryCall(agent));
        return connections.every((entry) => entry.closedAfterMs !== null);
      },
      { timeoutMs: CLOSED_WITHIN_MS + 5_000, message: () => `every slow TLS connection to be closed (${connections.filter((entry) => entry.closedAfterMs === null).length} open)` },
    );
  } finally {
    clearInterval(dribble);
    agent.destroy();
    for (const { socket } of connections) socket.destroy();
  }
  expect(Math.max(...connections.map((entry) => entry.closedAfterMs!))).toBeLessThan(CLOSED_WITHIN_MS);
  // GetSession of an unknown session: 404 (not_found) on every ordinary call.
  expect(statuses.length).toBeGreaterThan(1);
  expect(new Set(statuses)).toEqual(new Set([404]));
});
