/**
 * A TCP proxy for client tests: forwards connections to an upstream port
 * that can be switched (a replica restarted on another port), and can lose
 * the next response: it forwards the request, waits until the server starts
 * answering (so the server has done the work), then destroys both sides of
 * the connection without passing the answer on.
 */
import net from "node:net";

/** Which framing `loseNextResponse` watches for the start of a response. */
export type Framing = "http1" | "h2";

/** A running proxy. */
export interface TestProxy {
  port: number;
  /** Forwards new connections to this port; null refuses them (closes at once). */
  setUpstream(port: number | null): void;
  /**
   * Loses the next response: "http1", the first byte the upstream sends after
   * a request; "h2", the first HEADERS frame of a stream (after the server's
   * connection preface). Resolves when it has been lost.
   */
  loseNextResponse(framing: Framing): Promise<void>;
  /** Destroys every open connection (as a crashed replica or a dropped network would). */
  cutAll(): void;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 forwarding to `upstream`. */
export async function startProxy(upstream: number | null): Promise<TestProxy> {
  let target = upstream;
  let accepted = 0;
  let armed: { framing: Framing; lost: () => void } | null = null;
  const open = new Set<net.Socket>();

  const server = net.createServer((client) => {
    accepted += 1;
    open.add(client);
    client.on("close", () => open.delete(client));
    client.on("error", () => client.destroy());
    if (target === null) {
      client.destroy();
      return;
    }
    const server = net.connect(target, "127.0.0.1");
    open.add(server);
    server.on("close", () => (open.delete(server), client.destroy()));
    server.on("error", () => server.destroy());
    client.on("close", () => server.destroy());
    client.on("data", (chunk: Buffer) => server.write(chunk));

    let h2Buffer = Buffer.alloc(0);
    const lose = () => {
      const done = armed!.lost;
      armed = null;
      client.destroy();
      server.destroy();
      done();
    };
    server.on("data", (chunk: Buffer) => {
      if (armed === null) {
        client.write(h2Buffer.length > 0 ? Buffer.concat([h2Buffer, chunk]) : chunk);
        h2Buffer = Buffer.alloc(0);
        return;
      }
      if (armed.framing === "http1") return lose();
      // HTTP/2: pass whole frames on until a HEADERS frame (type 1) on a stream (id > 0).
      h2Buffer = Buffer.concat([h2Buffer, chunk]);
      let offset = 0;
      while (h2Buffer.length - offset >= 9) {
        const length = h2Buffer.readUIntBE(offset, 3);
        const type = h2Buffer[offset + 3]!;
        const streamId = h2Buffer.readUInt32BE(offset + 5) & 0x7fffffff;
        if (h2Buffer.length - offset < 9 + length) break;
        if (type === 1 && streamId > 0) {
          client.write(h2Buffer.subarray(0, offset));
          return lose();
        }
        offset += 9 + length;
      }
      client.write(h2Buffer.subarray(0, offset));
      h2Buffer = h2Buffer.subarray(offset);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    setUpstream(next) {
      target = next;
    },
    loseNextResponse(framing) {
      return new Promise((resolve) => {
        armed = { framing, lost: resolve };
      });
    },
    cutAll() {
      for (const socket of open) socket.destroy();
    },
    connections: () => accepted,
    close() {
      for (const socket of open) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
