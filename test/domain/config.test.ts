import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("applies the documented defaults", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 8080, databaseUrl: null, defaultIdleTimeoutMs: 1_800_000, watchHeartbeatMs: 15_000, corsAllowedOrigins: [] });
  });

  it("reads values", () => {
    const config = loadConfig({ PORT: "9000", SESSION_T_IDLE_MS: "5000", CORS_ALLOWED_ORIGINS: "https://a.example, http://localhost:3000" });
    expect(config).toMatchObject({ port: 9000, defaultIdleTimeoutMs: 5000, corsAllowedOrigins: ["https://a.example", "http://localhost:3000"] });
  });

  it("reports every problem at once", () => {
    let error: unknown;
    try {
      loadConfig({ PORT: "http", SESSION_T_IDLE_MS: "10", LOG_LEVEL: "loud", TLS_CERT_FILE: "cert.pem", DATABASE_URL: "mysql://x" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const names = (error as ConfigError).problems.map((problem) => problem.split(/[=:]/)[0]);
    expect(names.sort()).toEqual(["DATABASE_URL", "LOG_LEVEL", "PORT", "SESSION_T_IDLE_MS", "TLS_CERT_FILE and TLS_KEY_FILE"]);
  });

  it("requires credentials by default and accepts AUTH=off only on a loopback HOST", () => {
    expect(loadConfig({}).auth).toBe("required");
    for (const host of ["127.0.0.1", "127.8.9.10", "::1", "localhost"]) expect(loadConfig({ AUTH: "off", HOST: host }).auth).toBe("off");
    for (const host of ["0.0.0.0", "::", "10.0.0.5", "sessions.example.org", "127.0.0.1.example.org"]) {
      const error = (() => {
        try {
          loadConfig({ AUTH: "off", HOST: host });
        } catch (e) {
          return e;
        }
      })();
      expect(error, host).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems[0]).toMatch(/^AUTH=off: only allowed when HOST is a loopback address/);
    }
  });

  it("reads client certificate roles and checks what they need", () => {
    const roles = loadConfig({ TLS_CERT_FILE: "c.pem", TLS_KEY_FILE: "k.pem", TLS_CLIENT_CA_FILE: "ca.pem", TLS_CLIENT_ROLES: "worker-a=writer, ops=admin" }).tlsClientRoles;
    expect([...roles]).toEqual([["worker-a", "writer"], ["ops", "admin"]]);
    expect(() => loadConfig({ TLS_CLIENT_ROLES: "worker-a=root" })).toThrow(/TLS_CLIENT_ROLES/);
    expect(() => loadConfig({ TLS_CLIENT_ROLES: "worker-a=writer" })).toThrow(/TLS_CLIENT_ROLES: needs TLS_CLIENT_CA_FILE/);
    expect(() => loadConfig({ JWT_JWKS_URL: "https://idp/jwks", JWT_PUBLIC_KEY_FILE: "k.pem" })).toThrow(/set one or neither/);
  });
});
