/**
 * TLS with ALPN: with a certificate configured, one port serves gRPC over
 * HTTP/2 and Connect over HTTP/1.1, both encrypted.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import type { App } from "../../src/app.js";
import { startTestApp, uniqueId } from "../support/app.js";

const dir = mkdtempSync(join(tmpdir(), "sm-tls-"));
const certFile = join(dir, "cert.pem");
const keyFile = join(dir, "key.pem");
let app: App;

beforeAll(async () => {
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", keyFile, "-out", certFile,
  ], { stdio: "ignore" });
  app = await startTestApp({ tlsCertFile: certFile, tlsKeyFile: keyFile });
});
afterAll(async () => {
  await app.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("TLS", () => {
  it("serves gRPC (h2 by ALPN) and Connect over HTTP/1.1 on the same port", async () => {
    const baseUrl = `https://localhost:${app.port}`;
    const ca = readFileSync(certFile);
    const grpc = createClient(SessionManagerService, createGrpcTransport({ baseUrl, nodeOptions: { ca } }));
    const connect = createClient(SessionManagerService, createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca } }));
    const { session } = await grpc.startSession({ recordId: uniqueId("rec"), userId: uniqueId("tls") });
    const { session: got } = await connect.getSession({ sessionId: session!.sessionId });
    expect(got).toEqual(session);
  });

  it("refuses plaintext on the TLS port", async () => {
    const plain = createClient(SessionManagerService, createConnectTransport({ baseUrl: `http://127.0.0.1:${app.port}`, httpVersion: "1.1" }));
    // The TLS port resets a plaintext connection: the client sees the reset, never an answer.
    const error = await plain.getSession({ sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error).toMatchObject({ code: Code.Aborted, isWireError: false });
    expect((error!.cause as NodeJS.ErrnoException).code).toBe("ECONNRESET");
  });
});
