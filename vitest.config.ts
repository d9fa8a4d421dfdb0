import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The multi-replica test spawns server processes and the standby tests build a replication
    // group: each runs on its own (npm run test:replicas, npm run test:standby).
    exclude: ["test/replicas/**", "test/standby/**", "**/node_modules/**"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default", "json"],
    outputFile: { json: ".data/vitest-report.json" },
  },
});
