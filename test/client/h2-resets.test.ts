/**
 * The client's codes for HTTP/2 stream resets. A Node HTTP/2 server resets a
 * new stream with ENHANCE_YOUR_CALM when the connection holds its stream
 * limit (an overloaded replica); connect-node reports that as INTERNAL when
 * Node raises the stream's "error" before its "close". The client maps it to
 * RESOURCE_EXHAUSTED, and REFUSED_STREAM to UNAVAILABLE, as gRPC does
 * (doc/PROTOCOL-HTTP2.md). A real HTTP/2 peer sends the resets.
 */
import http2 from "node:http2";
import { once } from "node:events";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSessionManagerClient, SessionManagerError } from "../../src/client/index.js";

let server: http2.Http2Server;
let baseUrl: string;
const resets: number[] = [];

beforeAll(async () => {
  // Resets each stream with the next code in `resets`; no answer is ever sent.
  server = http2.createServer();
  server.on("stream", (stream) => {
    const code = resets.shift() ?? http2.constants.NGHTTP2_INTERNAL_ERROR;
    // Node raises the reset on this side too ("Stream closed with error code ..."): expected here.
    stream.on("error", () => {});
    stream.close(code);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

async function codeOfReset(rstCode: number): Promise<{ code: Code; wrapped: Code }> {
  resets.push(rstCode);
  const client = createSessionManagerClient({ baseUrl, transport: "grpc", retry: { maxAttempts: 1 } });
  const error = await client.getSession({ sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }).then(
    () => null,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(SessionManagerError);
  const failed = error as SessionManagerError;
  return { code: failed.code, wrapped: failed.cause.code };
}

describe("HTTP/2 stream resets", () => {
  it("reads ENHANCE_YOUR_CALM as RESOURCE_EXHAUSTED, not INTERNAL", async () => {
    const { code, wrapped } = await codeOfReset(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(code).toBe(Code.ResourceExhausted);
    // What connect-node itself says; if it ever reports the reset itself, the mapping is simply unused.
    expect([Code.Internal, Code.ResourceExhausted]).toContain(wrapped);
  });

  it("reads REFUSED_STREAM as UNAVAILABLE", async () => {
    const { code } = await codeOfReset(http2.constants.NGHTTP2_REFUSED_STREAM);
    expect(code).toBe(Code.Unavailable);
  });

  it("leaves other resets as connect-node reports them", async () => {
    const { code } = await codeOfReset(http2.constants.NGHTTP2_INTERNAL_ERROR);
    expect(code).toBe(Code.Internal);
  });
});
