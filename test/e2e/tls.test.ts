/**
 * TLS with ALPN: with a certificate configured, one port serves gRPC over
 * HTTP/2 and Connect over HTTP/1.1, both encrypted. With TLS_CLIENT_CA_FILE,
 * a client certificate the CA signed and TLS_CLIENT_ROLES names is a
 * credential; unverified or unnamed ones are not.
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
import { expectError } from "../support/rpc.js";

const dir = mkdtempSync(join(tmpdir(), "sm-tls-"));
const certFile = join(dir, "cert.pem");
const keyFile = join(dir, "key.pem");
let app: App;
let mtlsApp: App;

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { stdio: "ignore" });
}

/** Issues a client certificate for `cn`, signed by the test client CA (or self-signed with `selfSigned`). */
function clientCertificate(cn: string, selfSigned = false): { cert: Buffer; key: Buffer } {
  const key = join(dir, `${cn}-${selfSigned ? "self" : "ca"}.key`);
  const cert = join(dir, `${cn}-${selfSigned ? "self" : "ca"}.pem`);
  if (selfSigned) {
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${cn}`, "-keyout", key, "-out", cert);
  } else {
    const csr = join(dir, `${cn}.csr`);
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${cn}`, "-keyout", key, "-out", csr);
    openssl("x509", "-req", "-in", csr, "-CA", join(dir, "client-ca.pem"), "-CAkey", join(dir, "client-ca.key"), "-CAcreateserial", "-days", "1", "-out", cert);
  }
  return { cert: readFileSync(cert), key: readFileSync(key) };
}

beforeAll(async () => {
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", keyFile, "-out", certFile,
  ], { stdio: "ignore" });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test client CA", "-keyout", join(dir, "client-ca.key"), "-out", join(dir, "client-ca.pem"));
  app = await startTestApp({ tlsCertFile: certFile, tlsKeyFile: keyFile });
  mtlsApp = await startTestApp({
    tlsCertFile: certFile,
    tlsKeyFile: keyFile,
    auth: "required",
    tlsClientCaFile: join(dir, "client-ca.pem"),
    tlsClientRoles: new Map([
      ["worker-a", "writer"],
      ["auditor", "reader"],
    ]),
  });
});
afterAll(async () => {
  await app.stop();
  await mtlsApp.stop();
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

  it("takes a client certificate signed by TLS_CLIENT_CA_FILE as a credential with its TLS_CLIENT_ROLES role", async () => {
    const baseUrl = `https://localhost:${mtlsApp.port}`;
    const ca = readFileSync(certFile);
    const clients = (identity: { cert: Buffer; key: Buffer } | null) => {
      const nodeOptions = { ca, ...(identity ?? {}) };
      return [
        createClient(SessionManagerService, createGrpcTransport({ baseUrl, nodeOptions })),
        createClient(SessionManagerService, createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions })),
      ];
    };
    const start = (client: ReturnType<typeof clients>[number]) => client.startSession({ recordId: uniqueId("rec"), userId: uniqueId("mtls") });
    for (const worker of clients(clientCertificate("worker-a"))) {
      const { session } = await start(worker);
      expect((await worker.getSession({ sessionId: session!.sessionId })).session!.sessionId).toBe(session!.sessionId);
    }
    for (const auditor of clients(clientCertificate("auditor"))) {
      await auditor.listSessions({ userId: uniqueId("mtls") });
      await expectError(start(auditor), Code.PermissionDenied, "ROLE_NOT_ALLOWED");
    }
    // Signed by the CA but not named in TLS_CLIENT_ROLES; a self-signed one claiming a known name; none.
    for (const stranger of [...clients(clientCertificate("stranger")), ...clients(clientCertificate("worker-a", true)), ...clients(null)]) {
      await expectError(start(stranger), Code.Unauthenticated, "CREDENTIALS_MISSING");
    }
  });
});
