import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // Conformance and real-data tests spawn processes and share fixtures built once.
    globalSetup: ["test/global-setup.ts"],
    pool: "forks",
  },
});
