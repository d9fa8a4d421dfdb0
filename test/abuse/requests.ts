/**
 * Sends one abusive request and reports how it was answered: gRPC over h2c
 * with node:http2, gRPC-Web and Connect over HTTP/1.1 with node:http. Both
 * tolerate a server that answers before the body is sent and then closes or
 * resets: the answer is what counts.
 */
import http from "node:http";
import http2 from "node:http2";

/** Frames `payload` as one gRPC / gRPC-Web / Connect streaming envelope (flags, 4-byte length, bytes). */
export function envelope(payload: Buffer, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** How a gRPC call over h2c ended: its grpc-status, or the stream's error when none came. */
export interface GrpcOutcome {
  grpcStatus: number | null;
  /** The RST_STREAM code or error the stream ended with when no grpc-status came. */
  error: string | null;
}

/** Sends a gRPC request (`body` already enveloped) over a new h2c connection and waits for its status. */
export async function sendGrpc(port: number, path: string, body: Buffer, headers: http2.OutgoingHttpHeaders = {}): Promise<GrpcOutcome> {
  // Node's own default maxSessionMemory (10 MB) would make THIS client reset a 10 MiB request
  // with ENHANCE_YOUR_CALM before the server answers; the client is not what is under test.
  const session = http2.connect(`http://127.0.0.1:${port}`, { maxSessionMemory: 1000 });
  session.on("error", () => {});
  try {
    return await new Promise<GrpcOutcome>((resolve) => {
      const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
      const statusOf = (received: http2.IncomingHttpHeaders) => {
        if (received["grpc-status"] !== undefined) resolve({ grpcStatus: Number(received["grpc-status"]), error: null });
      };
      stream.on("response", statusOf);
      stream.on("trailers", statusOf);
      stream.on("error", (error) => resolve({ grpcStatus: null, error: String(error) }));
      stream.on("close", () => resolve({ grpcStatus: null, error: `closed with code ${stream.rstCode}` }));
      stream.resume();
      stream.end(body);
    });
  } finally {
    session.destroy();
  }
}

/** How an HTTP/1.1 request was answered. */
export interface Http1Outcome {
  status: number | null;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Set when the connection failed before a response arrived. */
  error: string | null;
}

/**
 * Sends a POST over a new HTTP/1.1 connection. `body` may be a Buffer (sent
 * with content-length) or chunks (sent chunked, one by one, stopping once
 * the response arrives).
 */
export async function sendHttp1(port: number, path: string, headers: http.OutgoingHttpHeaders, body: Buffer | Buffer[]): Promise<Http1Outcome> {
  return new Promise<Http1Outcome>((resolve) => {
    const request = http.request({ host: "127.0.0.1", port, path, method: "POST", headers, agent: false });
    let answered = false;
    request.on("response", (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      const done = () => resolve({ status: response.statusCode ?? null, headers: response.headers, body: Buffer.concat(chunks).toString("latin1"), error: null });
      response.on("end", done);
      response.on("error", done);
      response.on("close", done);
    });
    request.on("error", (error) => {
      if (!answered) resolve({ status: null, headers: {}, body: "", error: String(error) });
    });
    if (Buffer.isBuffer(body)) {
      request.end(body);
      return;
    }
    void (async () => {
      for (const chunk of body) {
        if (answered || request.destroyed) return;
        if (!request.write(chunk)) await new Promise((resolve) => request.once("drain", resolve));
      }
      request.end();
    })();
  });
}

/** Returns the grpc-status of a gRPC-Web answer: from its headers (trailers-only) or its trailer frame. */
export function grpcWebStatus(outcome: Http1Outcome): number | null {
  const header = outcome.headers["grpc-status"];
  if (typeof header === "string") return Number(header);
  const trailer = /grpc-status:\s*(\d+)/i.exec(outcome.body);
  return trailer ? Number(trailer[1]) : null;
}

/** Returns the Connect error code in an answer's body (unary JSON error or streaming end message), or null. */
export function connectErrorCode(outcome: Http1Outcome): string | null {
  return /"code"\s*:\s*"([a-z_]+)"/.exec(outcome.body)?.[1] ?? null;
}

/** The gRPC status codes the tests look for. */
export const GRPC_STATUS = { OK: 0, INVALID_ARGUMENT: 3, NOT_FOUND: 5, RESOURCE_EXHAUSTED: 8, INTERNAL: 13 } as const;
