import { defineConfig } from "vitest/config";

// The multi-replica feed test (test/replicas): real server processes, a
// SIGKILL and a PostgreSQL restart. Run with `npm run test:replicas`; the
// main `npm test` leaves it out to stay fast.
export default defineConfig({
  test: {
    include: ["test/replicas/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    // connect-node's HTTP/1.1 client can leave a rejection unhandled when the
    // server process dies while a request is being written (EPIPE/ECONNRESET).
    // The test kills replicas on purpose; the calls themselves still fail and
    // are retried, so these stray rejections carry no information.
    onUnhandledError(error) {
      if (error.name === "ConnectError" && /\b(EPIPE|ECONNRESET)\b/.test(error.message)) return false;
    },
    reporters: ["default", "json"],
    outputFile: { json: ".data/vitest-replicas-report.json" },
  },
});
