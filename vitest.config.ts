import { defineConfig } from "vitest/config";

// Two projects: `unit` (each package's own tests: in-process, real registry at most, a fast
// loop: `npm run test:unit`) and `integration` (cross-package tests with the reference, the
// CLI, FUSE, podman). `npm test` runs both.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 600_000,
    pool: "forks",
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: [
            "packages/format/test/**/*.test.ts",
            "packages/registry/test/**/*.test.ts",
            "packages/image/test/**/*.test.ts",
            "packages/reader/test/**/*.test.ts",
          ],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: [
            "packages/cli/test/**/*.test.ts",
            "packages/mount/test/**/*.test.ts",
            "test/**/*.test.ts",
          ],
          // Conformance and real-data tests spawn processes and share fixtures built once.
          globalSetup: ["test/global-setup.ts"],
        },
      },
    ],
  },
});
