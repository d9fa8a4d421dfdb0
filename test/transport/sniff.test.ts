/**
 * The one-port protocol sniffer (src/transport/sniff.ts) on real sockets: a
 * `net` server on 127.0.0.1 port 0 routes each connection with
 * `routeBySniffing` to a real HTTP/1.1 server or to a stand-in h2c handler
 * that reads the socket itself, as an HTTP/2 session does.
 */
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { PREFACE, routeBySniffing } from "../../src/transport/sniff.js";
import { sleep, waitFor } from "../support/wait.js";

/** The whole HTTP/2 client connection preface (RFC 9113 section 3.4); PREFACE is its first 14 bytes. */
const CLIENT_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
// Failures should name what was awaited well before the test timeout.
const WAIT = { timeoutMs: 5_000 };

interface Sniffer {
  /** Server-side sockets, in accept order. */
  accepted: net.Socket[];
  /** Sockets handed to the h2c handler. */
  h2c: net.Socket[];
  /** Sockets handed to the HTTP/1.1 server. */
  h1: net.Socket[];
  connect(): Promise<Client>;
}

interface Client {
  socket: net.Socket;
  received(): string;
  closed(): boolean;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** Starts a sniffing `net` server whose HTTP/1.1 server answers "<method> <url> <body>". */
async function startSniffer(timeoutMs = 5_000): Promise<Sniffer> {
  const accepted: net.Socket[] = [];
  const h2c: net.Socket[] = [];
  const h1Sockets: net.Socket[] = [];
  const h1 = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => res.end(`${req.method} ${req.url} ${body}`));
  });
  h1.on("connection", (socket: net.Socket) => h1Sockets.push(socket));
  const server = net.createServer((socket) => {
    accepted.push(socket);
    routeBySniffing(socket, h1, (handed) => h2c.push(handed), timeoutMs);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  const clients: net.Socket[] = [];
  cleanups.push(async () => {
    for (const socket of [...clients, ...accepted]) socket.destroy();
    h1.close();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    accepted,
    h2c,
    h1: h1Sockets,
    async connect() {
      const before = accepted.length;
      const socket = net.connect(port, "127.0.0.1");
      clients.push(socket);
      let received = "";
      let closed = false;
      socket.setEncoding("latin1");
      socket.on("data", (chunk: string) => (received += chunk));
      socket.on("error", () => {});
      socket.on("close", () => (closed = true));
      await new Promise((resolve) => socket.once("connect", resolve));
      await waitFor(() => accepted.length > before, { ...WAIT, message: "the server to accept" });
      return { socket, received: () => received, closed: () => closed };
    },
  };
}

/** Reads a handed-on socket from where the hand-off left it, as the h2c server would. */
function readAll(socket: net.Socket): () => Buffer {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  return () => Buffer.concat(chunks);
}

function write(socket: net.Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));
}

describe("routeBySniffing", () => {
  it("hands a connection that starts with the preface to h2c with every byte intact", async () => {
    const sniffer = await startSniffer();
    const client = await sniffer.connect();
    const first = Buffer.concat([CLIENT_PREFACE, Buffer.from([0x00, 0x00, 0x00, 0x04, 0x00, 0xff, 0x80, 0x0d, 0x0a])]);
    await write(client.socket, first);
    const [socket] = await waitFor(() => sniffer.h2c.length === 1 && sniffer.h2c, { ...WAIT, message: "the h2c hand-off" });
    expect(socket).toBe(sniffer.accepted[0]);
    // Read only now, as a session set up after the hand-off would: the sniffer must not have let bytes flow.
    const read = readAll(socket!);
    const second = Buffer.from("after the hand-off");
    await write(client.socket, second);
    const expected = Buffer.concat([first, second]);
    await waitFor(() => read().length >= expected.length, { ...WAIT, message: () => `${expected.length} bytes, have ${read().length}` });
    expect(read()).toEqual(expected);
    expect(sniffer.h1).toEqual([]);
  });

  it("hands an HTTP/1.1 request to the HTTP/1.1 server intact", async () => {
    const sniffer = await startSniffer();
    const client = await sniffer.connect();
    await write(client.socket, "POST /echo?x=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    await waitFor(() => client.closed(), { ...WAIT, message: "the response and close" });
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(client.received().endsWith("\r\n\r\nPOST /echo?x=1 hello")).toBe(true);
    expect(sniffer.h1).toHaveLength(1);
    expect(sniffer.h2c).toEqual([]);
  });

  it("waits while the bytes are a prefix of the preface, across several writes", async () => {
    const sniffer = await startSniffer();
    const client = await sniffer.connect();
    const server = sniffer.accepted[0]!;
    const all = Buffer.concat([CLIENT_PREFACE, Buffer.from("frames")]);
    // Writes of 1, 7 and 5 bytes: each leaves a strict prefix of the 14-byte PREFACE.
    let start = 0;
    for (const end of [1, 8, 13]) {
      await write(client.socket, all.subarray(start, end));
      await waitFor(() => server.bytesRead === end, { ...WAIT, message: `the server to read ${end} bytes` });
      expect(sniffer.h2c).toEqual([]);
      expect(sniffer.h1).toEqual([]);
      expect(server.destroyed).toBe(false);
      start = end;
    }
    await write(client.socket, all.subarray(13));
    const [socket] = await waitFor(() => sniffer.h2c.length === 1 && sniffer.h2c, { ...WAIT, message: "the h2c hand-off" });
    const read = readAll(socket!);
    await waitFor(() => read().length >= all.length, { ...WAIT, message: () => `${all.length} bytes, have ${read().length}` });
    expect(read()).toEqual(all);
    expect(sniffer.h1).toEqual([]);
  });

  it("hands bytes that leave the preface to HTTP/1.1 at once, without waiting for 14 bytes", async () => {
    const sniffer = await startSniffer();
    const get = await sniffer.connect();
    await write(get.socket, "GET");
    await waitFor(() => sniffer.h1.length === 1, { ...WAIT, message: "the HTTP/1.1 hand-off after 3 bytes" });
    expect(sniffer.accepted[0]!.bytesRead).toBe(3);
    await write(get.socket, " /early HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    await waitFor(() => get.closed(), { ...WAIT, message: "the response and close" });
    expect(get.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(get.received().endsWith("\r\n\r\nGET /early ")).toBe(true);

    // 11 bytes match the preface, the 12th does not: HTTP/1.1 gets it (and rejects the method PRI).
    const late = await sniffer.connect();
    await write(late.socket, "PRI * HTTP/1");
    await waitFor(() => sniffer.h1.length === 2, { ...WAIT, message: "the HTTP/1.1 hand-off after 12 bytes" });
    expect(sniffer.accepted[1]!.bytesRead).toBe(12);
    await write(late.socket, ".1\r\nHost: test\r\n\r\n");
    await waitFor(() => late.closed(), { ...WAIT, message: "the 400 and close" });
    expect(late.received()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(sniffer.h2c).toEqual([]);
  });

  it("destroys a connection that stays silent for the timeout before it is handed on", async () => {
    const sniffer = await startSniffer(50);
    const silent = await sniffer.connect();
    await waitFor(() => silent.closed(), { ...WAIT, message: "the silent connection to be closed" });
    expect(sniffer.accepted[0]!.destroyed).toBe(true);
    expect(silent.received()).toBe("");

    // A prefix of the preface, then nothing: still undecided, so the same timeout applies.
    const stalled = await sniffer.connect();
    await write(stalled.socket, PREFACE.subarray(0, 6));
    await waitFor(() => stalled.closed(), { ...WAIT, message: "the stalled connection to be closed" });
    expect(sniffer.accepted[1]!.bytesRead).toBe(6);
    expect(sniffer.accepted[1]!.destroyed).toBe(true);
    expect(sniffer.h2c).toEqual([]);
    expect(sniffer.h1).toEqual([]);
  });

  it("leaves a handed-on connection to its server: the sniffing timeout no longer applies", async () => {
    const sniffer = await startSniffer(50);
    const client = await sniffer.connect();
    await write(client.socket, CLIENT_PREFACE);
    const [socket] = await waitFor(() => sniffer.h2c.length === 1 && sniffer.h2c, { ...WAIT, message: "the h2c hand-off" });
    // Must NOT happen: the sniffer destroying the idle connection after its 50 ms timeout.
    await sleep(250);
    expect(socket!.destroyed).toBe(false);
    expect(client.closed()).toBe(false);
  });
});
