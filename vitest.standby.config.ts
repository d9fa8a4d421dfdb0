import { defineConfig } from "vitest/config";

// The hot-standby tests (test/standby): each file builds its own PostgreSQL
// replication group (a primary and a streaming standby) from the embedded
// PostgreSQL 18 binaries, so they need no global database. Run with
// `npm run test:standby`; the main `npm test` leaves them out.
export default defineConfig({
  test: {
    include: ["test/standby/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    reporters: ["default", "json"],
    outputFile: { json: ".data/vitest-standby-report.json" },
  },
});
