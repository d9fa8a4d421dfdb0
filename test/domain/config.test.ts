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

  it("reads standbys and read consistency, defaulting to the primary alone", () => {
    expect(loadConfig({})).toMatchObject({ readDatabaseUrls: [], readConsistency: "primary", readReplayWaitMs: 5_000 });
    const config = loadConfig({
      READ_DATABASE_URLS: " postgres://standby-a:5432/sm , postgresql://standby-b/sm,",
      READ_CONSISTENCY: "replica",
      READ_REPLAY_WAIT_MS: "250",
    });
    expect(config).toMatchObject({ readDatabaseUrls: ["postgres://standby-a:5432/sm", "postgresql://standby-b/sm"], readConsistency: "replica", readReplayWaitMs: 250 });
  });

  it("rejects bad standby settings, naming the variable", () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };
    expect(problems({ READ_DATABASE_URLS: "postgres://a/sm,mysql://b/sm" })).toEqual([expect.stringMatching(/^READ_DATABASE_URLS=.*entry 2 is not one/)]);
    expect(problems({ READ_DATABASE_URLS: "postgres://a/sm,postgres://a/sm" })).toEqual([expect.stringMatching(/^READ_DATABASE_URLS=.*listed twice/)]);
    expect(problems({ READ_CONSISTENCY: "eventual" })).toEqual([expect.stringMatching(/^READ_CONSISTENCY=.*primary or replica/)]);
    expect(problems({ READ_REPLAY_WAIT_MS: "-1" })).toEqual([expect.stringMatching(/^READ_REPLAY_WAIT_MS=/)]);
    // A URL's password must not end up in the problem text (logs).
    expect(problems({ READ_DATABASE_URLS: "postgres://u:secret@a/sm,nope" }).join("")).not.toContain("secret");
    expect(problems({ DATABASE_URL: "postgress://u:secret@a/sm" })).toEqual([expect.stringMatching(/^DATABASE_URL=\(value hidden\): expected a postgres/)]);
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
