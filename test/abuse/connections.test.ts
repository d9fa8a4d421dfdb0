/**
 * What a connection sends before its request, against a real server
 * process: HTTP/1.1 header blocks over MAX_HEADER_LIST_BYTES (a 1 MiB
 * header, 10,000 header pairs), and slowloris: 500 connections dribbling
 * HTTP/1.1 headers, the HTTP/2 preface or an HTTP/2 HEADERS frame a byte at
 * a time. Oversized headers get 431 (or a closed connection); every slow
 * connection is closed within HEADERS_TIMEOUT_MS (plus the HTTP/1.1 server's
 * check interval and the HTTP/2 GOAWAY grace), the server's peak RSS stays
 * bounded and ordinary calls from other clients keep succeeding.
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../support/wait.js";
import { MIB, SERVICE, startAbuseServer, underAbuse, type AbuseServer } from "./abuse-server.js";
import { grpcRequestHeaders, headerBlock, headersFrames } from "./raw-h2.js";

const HEADERS_TIMEOUT_MS = 2_000;
/** Longest a slow connection may live: the HTTP/1.1 server checks every HEADERS_TIMEOUT_MS, HTTP/2 adds a 1 s GOAWAY grace; doubled for a loaded machine. */
const CLOSED_WITHIN_MS = 2 * (2 * HEADERS_TIMEOUT_MS + 1_000);

let server: AbuseServer;

beforeAll(async () => {
  server = await startAbuseServer("connections", { HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS) });
});

afterAll(async () => {
  await server?.stop();
});

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Writes `bytes` on a new connection and returns everything the server sent before it closed, or the error that ended it. */
async function sendRaw(bytes: Buffer): Promise<{ received: string; error: string | null }> {
  const socket = await connect();
  let received = "";
  let error: string | null = null;
  socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
  socket.on("error", (cause) => (error = cause.message));
  socket.write(bytes);
  await new Promise((resolve) => socket.once("close", resolve));
  return { received, error };
}

describe("HTTP/1.1 header blocks over the limit", () => {
  const request = (headers: string) => Buffer.from(`POST ${SERVICE}/GetSession HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n${headers}\r\n{}`, "latin1");

  it.each([
    ["a 1 MiB header", `x-big: ${"a".repeat(MIB)}\r\n`],
    ["10,000 header pairs", Array.from({ length: 10_000 }, (_, i) => `x-h${i}: v\r\n`).join("")],
  ])("answers %s with 431 and closes the connection", async (name, headers) => {
    const runs = await underAbuse(server, `${name}, HTTP/1.1`, () => Promise.all(Array.from({ length: 4 }, () => sendRaw(request(headers)))));
    const outcomes = runs.flat();
    // The server answers 431 and closes at once, with most of the block unread: the client may
    // see its connection reset before it reads the answer. Nothing else is acceptable.
    const answered = outcomes.filter((outcome) => outcome.received.startsWith("HTTP/1.1 431 "));
    const reset = outcomes.filter((outcome) => outcome.received === "" && /ECONNRESET|EPIPE/.test(outcome.error ?? ""));
    expect(answered.length + reset.length).toBe(outcomes.length);
    expect(answered.length).toBeGreaterThan(0);
  });
});

describe("slowloris", () => {
  const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0", "latin1");
  // At a byte per 100 ms, the HTTP/1.1 header block and the HEADERS frame take far longer
  // than the headers timeout to complete; the preface alone is complete after 3.3 s and
  // then opens no stream.
  const kinds = {
    "HTTP/1.1 headers": Buffer.from(`POST ${SERVICE}/GetSession HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n${"x-slow: a\r\n".repeat(100)}\r\n`, "latin1"),
    "HTTP/2 preface": preface,
    "HTTP/2 HEADERS frame": Buffer.concat([preface, headersFrames(1, headerBlock(grpcRequestHeaders(`${SERVICE}/GetSession`, [["x-slow", "a".repeat(200)]])), false)]),
  };

  it("closes 500 connections that dribble a request a byte at a time within the headers timeout", async () => {
    const [result] = await underAbuse(
      server,
      "slowloris, 500 connections",
      async () => {
        const names = Object.keys(kinds) as Array<keyof typeof kinds>;
        const sockets = await Promise.all(
          Array.from({ length: 500 }, async (_, i) => {
            const kind = names[i % names.length]!;
            const socket = await connect();
            socket.on("error", () => {});
            socket.on("data", () => {});
            return { kind, socket, bytes: kinds[kind], openedAt: performance.now(), closedAfterMs: null as number | null };
          }),
        );
        for (const entry of sockets) entry.socket.once("close", () => (entry.closedAfterMs = performance.now() - entry.openedAt));
        let offset = 0;
        const dribble = setInterval(() => {
          for (const { socket, bytes } of sockets) if (!socket.destroyed && offset < bytes.length) socket.write(bytes.subarray(offset, offset + 1));
          offset++;
        }, 100);
        try {
          await waitFor(() => sockets.every((entry) => entry.closedAfterMs !== null), {
            timeoutMs: CLOSED_WITHIN_MS + 5_000,
            intervalMs: 50,
            message: () => `every slow connection to be closed (${sockets.filter((entry) => entry.closedAfterMs === null).length} open)`,
          });
        } finally {
          clearInterval(dribble);
          for (const { socket } of sockets) socket.destroy();
        }
        return Object.fromEntries(names.map((kind) => [kind, Math.round(Math.max(...sockets.filter((entry) => entry.kind === kind).map((entry) => entry.closedAfterMs!)))]));
      },
      // One wave of 500 connections lasts the headers timeout: ordinary calls complete meanwhile.
      { ordinaryRounds: 1 },
    );
    console.log("slowloris: slowest close per kind (ms)", result);
    for (const closedAfterMs of Object.values(result!)) expect(closedAfterMs).toBeLessThan(CLOSED_WITHIN_MS);
  });
});

describe("a connection that never completes the HTTP/2 preface", () => {
  it("is closed HEADERS_TIMEOUT_MS after its accept, however it spaces its bytes", async () => {
    // 13 bytes of "PRI * HTTP/2.0", one every 60% of the timeout: each byte alone arrives in time,
    // so a timer that restarted per byte would keep the socket for 13 x that.
    const prefix = Buffer.from("PRI * HTTP/2.");
    const socket = await connect();
    socket.on("error", () => {});
    const openedAt = performance.now();
    let closedAfterMs: number | null = null;
    socket.once("close", () => (closedAfterMs = performance.now() - openedAt));
    let offset = 0;
    const dribble = setInterval(() => {
      if (!socket.destroyed && offset < prefix.length) socket.write(prefix.subarray(offset, ++offset));
    }, HEADERS_TIMEOUT_MS * 0.6);
    try {
      await waitFor(() => closedAfterMs !== null, { timeoutMs: prefix.length * HEADERS_TIMEOUT_MS, intervalMs: 50, message: "the undecided connection to be closed" });
    } finally {
      clearInterval(dribble);
      socket.destroy();
    }
    expect(closedAfterMs!).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    expect(closedAfterMs!).toBeLessThan(2 * HEADERS_TIMEOUT_MS);
  });
});
