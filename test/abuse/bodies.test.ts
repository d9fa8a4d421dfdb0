/**
 * Oversized bodies against a real server process: 10 MiB messages and gzip
 * bodies that inflate to 100 MiB, on every protocol. Each is answered with
 * RESOURCE_EXHAUSTED (MAX_REQUEST_BYTES, 1 MiB, counts the inflated size),
 * the server's peak RSS stays bounded, and ordinary calls from another
 * client keep succeeding meanwhile.
 */
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetSessionRequestSchema } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { MIB, SERVICE, UNKNOWN_SESSION_ID, startAbuseServer, underAbuse, type AbuseServer } from "./abuse-server.js";
import { GRPC_STATUS, connectErrorCode, envelope, grpcWebStatus, sendGrpc, sendHttp1, type Http1Outcome } from "./requests.js";

let server: AbuseServer;

beforeAll(async () => {
  server = await startAbuseServer("bodies");
});

afterAll(async () => {
  await server?.stop();
});

/** Requests sent at once in each run of an abuse. */
const PARALLEL = 4;

function parallel<T>(send: () => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: PARALLEL }, send));
}

describe("10 MiB bodies", () => {
  const big = "x".repeat(10 * MIB);
  const json = Buffer.from(JSON.stringify({ sessionId: UNKNOWN_SESSION_ID, pad: big }));
  const proto = Buffer.from(toBinary(GetSessionRequestSchema, create(GetSessionRequestSchema, { sessionId: big })));

  /**
   * Over HTTP/1.1 the server answers as soon as it knows the body is too
   * large and closes the connection (`connection: close`) without reading
   * the rest: a client still writing may see EPIPE/ECONNRESET before it
   * reads the answer. Either is a refusal; most requests read the answer.
   */
  function expectRefusedOverHttp1(outcomes: Http1Outcome[], answered: (outcome: Http1Outcome) => boolean): void {
    const closed = (outcome: Http1Outcome) => outcome.status === null && /EPIPE|ECONNRESET/.test(outcome.error ?? "");
    expect(outcomes.filter((outcome) => !answered(outcome) && !closed(outcome))).toEqual([]);
    expect(outcomes.filter(answered).length).toBeGreaterThan(0);
  }

  it("Connect JSON over HTTP/1.1, with content-length and chunked: resource_exhausted", async () => {
    const runs = await underAbuse(server, "10 MiB Connect JSON (HTTP/1.1)", async () => [
      ...(await parallel(() => sendHttp1(server.port, `${SERVICE}/GetSession`, { "content-type": "application/json" }, json))),
      ...(await parallel(() => sendHttp1(server.port, `${SERVICE}/GetSession`, { "content-type": "application/json" }, chunks(json)))),
    ]);
    expectRefusedOverHttp1(runs.flat(), (outcome) => outcome.status === 429 && connectErrorCode(outcome) === "resource_exhausted");
  });

  it("gRPC over h2c: RESOURCE_EXHAUSTED", async () => {
    const runs = await underAbuse(server, "10 MiB gRPC (h2c)", () => parallel(() => sendGrpc(server.port, `${SERVICE}/GetSession`, envelope(proto))));
    expect(runs.flat()).toEqual(Array(runs.length * PARALLEL).fill({ grpcStatus: GRPC_STATUS.RESOURCE_EXHAUSTED, error: null }));
  });

  it("gRPC-Web over HTTP/1.1: RESOURCE_EXHAUSTED", async () => {
    const runs = await underAbuse(server, "10 MiB gRPC-Web (HTTP/1.1)", () =>
      parallel(() => sendHttp1(server.port, `${SERVICE}/GetSession`, { "content-type": "application/grpc-web+proto" }, envelope(proto))),
    );
    expectRefusedOverHttp1(runs.flat(), (outcome) => grpcWebStatus(outcome) === GRPC_STATUS.RESOURCE_EXHAUSTED);
  });
});

describe("gzip bodies that inflate to 100 MiB", () => {
  // 100 MiB of spaces: valid JSON whitespace and ~100 KiB compressed, well under MAX_REQUEST_BYTES.
  const bomb = gzipSync(Buffer.alloc(100 * MIB, 0x20), { level: 9 });

  it("is small on the wire (so what is refused is its inflated size)", () => {
    expect(bomb.length).toBeLessThan(MIB / 4);
  });

  it.each(["GetSession", "WatchSessionEvents"])("gRPC over h2c, grpc-encoding gzip (%s): RESOURCE_EXHAUSTED", async (method) => {
    const runs = await underAbuse(server, `gzip bomb gRPC ${method} (h2c)`, () =>
      parallel(() => sendGrpc(server.port, `${SERVICE}/${method}`, envelope(bomb, 1), { "grpc-encoding": "gzip" })),
    );
    expect(runs.flat()).toEqual(Array(runs.length * PARALLEL).fill({ grpcStatus: GRPC_STATUS.RESOURCE_EXHAUSTED, error: null }));
  });

  it.each(["GetSession", "WatchSessionEvents"])("gRPC-Web over HTTP/1.1, grpc-encoding gzip (%s): RESOURCE_EXHAUSTED", async (method) => {
    const runs = await underAbuse(server, `gzip bomb gRPC-Web ${method} (HTTP/1.1)`, () =>
      parallel(() => sendHttp1(server.port, `${SERVICE}/${method}`, { "content-type": "application/grpc-web+proto", "grpc-encoding": "gzip" }, envelope(bomb, 1))),
    );
    expect(runs.flat().map(grpcWebStatus)).toEqual(Array(runs.length * PARALLEL).fill(GRPC_STATUS.RESOURCE_EXHAUSTED));
  });

  it("Connect unary, content-encoding gzip: resource_exhausted", async () => {
    const runs = await underAbuse(server, "gzip bomb Connect unary (HTTP/1.1)", () =>
      parallel(() => sendHttp1(server.port, `${SERVICE}/GetSession`, { "content-type": "application/json", "content-encoding": "gzip" }, bomb)),
    );
    expect(runs.flat().map((outcome) => [outcome.status, connectErrorCode(outcome)])).toEqual(Array(runs.length * PARALLEL).fill([429, "resource_exhausted"]));
  });

  it("Connect streaming, connect-content-encoding gzip: resource_exhausted", async () => {
    const runs = await underAbuse(server, "gzip bomb Connect streaming (HTTP/1.1)", () =>
      parallel(() =>
        sendHttp1(server.port, `${SERVICE}/WatchSessionEvents`, { "content-type": "application/connect+json", "connect-content-encoding": "gzip" }, envelope(bomb, 1)),
      ),
    );
    expect(runs.flat().map(connectErrorCode)).toEqual(Array(runs.length * PARALLEL).fill("resource_exhausted"));
  });
});

/** Splits `body` into 64 KiB chunks, so it is sent chunked (no content-length). */
function chunks(body: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += 64 * 1024) parts.push(body.subarray(offset, offset + 64 * 1024));
  return parts;
}
