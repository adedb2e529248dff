import { defineConfig } from "vitest/config";

/** Package tests that start the CLI as a process (they need the build and the fixtures). */
const CLI_PROCESS_TESTS = [
  "packages/cli/test/convert.test.ts",
  "packages/cli/test/errors.test.ts",
  "packages/cli/test/ls-names.test.ts",
  "packages/cli/test/plain-layer-names.test.ts",
];

// Two projects, placed by what a test needs: `unit` (every package's in-process tests, the
// real registry at most: the fast loop, `npm run test:unit`) and `integration` (the CLI as a
// process, the reference, FUSE, podman, containerd). `npm test` runs both.
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
          include: ["packages/*/test/**/*.test.ts"],
          exclude: CLI_PROCESS_TESTS,
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: [...CLI_PROCESS_TESTS, "test/**/*.test.ts"],
          // Conformance and real-data tests spawn processes and share fixtures built once.
          globalSetup: ["test/global-setup.ts"],
        },
      },
    ],
  },
});
