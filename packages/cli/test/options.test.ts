// Options shared by several commands are defined once (src/options.ts) and offered by every
// command the CLI contract names: registry options wherever a registry is talked to, cache
// and statistics options wherever chunks of remote blobs are read.
import { fileURLToPath } from "node:url";
import { run } from "@seekable/test-kit/run.js";
import { describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));

const REGISTRY = ["--creds <user:pass>", "--plain-http"];
const READING = ["--cache-dir <dir>", "--no-cache", "--stats"];
const HOST = ["--no-guess", "--read-ahead <bytes>"];

const commands: [string[], string[]][] = [
  [["convert"], REGISTRY],
  [["verify"], [...REGISTRY, ...READING, "--toc-digest <digest>", "--layer <n|digest>"]],
  [["ls"], [...REGISTRY, ...READING, "--platform <os/arch>"]],
  [["cat"], [...REGISTRY, ...READING]],
  [["toc"], [...REGISTRY, ...READING]],
  [["mount"], [...REGISTRY, ...READING, ...HOST]],
  [["store"], [...REGISTRY, ...READING, ...HOST, "--release-after <seconds>"]],
  [["snapshotter"], [...REGISTRY, ...READING, ...HOST]],
  [["pull"], REGISTRY],
  [["index"], REGISTRY],
  [["profile", "push"], REGISTRY],
  [["bench"], REGISTRY],
];

describe("shared options", () => {
  it("every command offers the option groups it needs, each with one help text (first words)", async () => {
    const helps = await Promise.all(
      commands.map(([cmd]) =>
        run(process.execPath, [CLI, ...cmd, "--help"], { timeoutMs: 60_000 }),
      ),
    );
    const texts = new Map<string, Set<string>>();
    helps.forEach((r, i) => {
      const [cmd, want] = commands[i];
      expect(r.code, r.stderr).toBe(0);
      const out = r.stdout.toString();
      for (const flag of want) {
        const line = out.split("\n").find((l) => l.trimStart().startsWith(flag));
        expect(line, `${cmd.join(" ")} ${flag}`).toBeDefined();
        // The help text's first words (commander wraps it at a width that depends on the
        // command's longest flag).
        const text = (line ?? "")
          .trim()
          .slice(flag.length)
          .trim()
          .split(/\s+/)
          .slice(0, 3)
          .join(" ");
        if (!texts.has(flag)) texts.set(flag, new Set());
        texts.get(flag)?.add(text);
      }
    });
    for (const [flag, set] of texts) expect([...set], flag).toHaveLength(1);
  });
});
