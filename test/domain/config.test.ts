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
});
