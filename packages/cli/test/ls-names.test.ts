// Hostile names in listings: `ls` quotes them as GNU ls does on a terminal, so a name can
// neither forge listing lines nor send escape sequences to the terminal; bash reads every
// quoted name back to the original (checked with the real bash, property-based).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mustSucceed, run } from "@seekable/test-kit/run.js";
import { makeTar } from "@seekable/test-kit/tar.js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { quoteName } from "../src/quote.js";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });

/** Control characters, line separators or bidirectional overrides anywhere in `s`. */
function unprintable(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp === 0x2028 || cp === 0x2029) return true;
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) return true;
  }
  return false;
}

/** What bash makes of a quoted word: the round trip a user pasting it would get. */
function bashReads(words: string[]): string[] {
  const script = words.map((w) => `printf '%s\\0' ${w}`).join("\n");
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split("\0").slice(0, -1);
}

describe("quoteName", () => {
  it("leaves plain names alone and quotes like GNU ls shell-escape", () => {
    expect(quoteName("usr/lib/libc.so.6")).toBe("usr/lib/libc.so.6");
    expect(quoteName("a b")).toBe("'a b'");
    expect(quoteName("it's")).toBe(`"it's"`);
    expect(quoteName("a\nb")).toBe("'a'$'\\n''b'");
    expect(quoteName("\x1b[31mred")).toBe("$'\\033''[31mred'");
    expect(quoteName("x\u202ey")).toBe("'x'$'\\u202e''y'");
  });

  it("every name becomes one printable line that bash reads back to the name", () => {
    const names: string[] = [];
    fc.assert(
      fc.property(fc.string({ unit: "binary", minLength: 1, maxLength: 24 }), (raw) => {
        // Tar names cannot hold NUL; everything else is fair game.
        const name = raw.replaceAll("\0", "");
        if (name === "") return;
        const q = quoteName(name);
        expect(unprintable(q)).toBe(false);
        names.push(name);
      }),
      { numRuns: 400 },
    );
    expect(bashReads(names.map(quoteName))).toEqual(names);
  });
});

describe("seekable ls and --version", () => {
  let dir: string;
  let blob: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "seekable-ls-names-"));
    writeFileSync(
      join(dir, "in.tar"),
      await makeTar([
        { name: "evil\n-rw-r--r-- 0/0 1 - forged", body: "x" },
        { name: "\x1b]0;pwned\x07title", body: "y" },
        { name: "plain.txt", body: "z" },
        { name: "link", type: "symlink", linkname: "a\nb" },
      ]),
    );
    blob = join(dir, "out.esgz");
    mustSucceed(await cli("convert", join(dir, "in.tar"), blob));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("prints one line per entry, no control characters, names quoted", async () => {
    const out = mustSucceed(await cli("ls", blob)).stdout.toString();
    const lines = out.trimEnd().split("\n");
    // root + 4 entries + the landmark
    expect(lines.length).toBe(6);
    expect(unprintable(out.replaceAll("\n", ""))).toBe(false);
    expect(out).toContain("'evil'$'\\n''-rw-r--r-- 0/0 1 - forged'");
    expect(out).toContain("$'\\033'']0;pwned'$'\\a''title'");
    expect(out).toContain(" plain.txt");
    expect(out).toContain("-> 'a'$'\\n''b'");
  });

  it("--json keeps the names exact", async () => {
    const r = mustSucceed(await cli("ls", blob, "--json"));
    expect(r.stdout.toString()).toContain(JSON.stringify("evil\n-rw-r--r-- 0/0 1 - forged"));
  });

  it("--version and -V print the package version", async () => {
    const { version } = (await import("../package.json", { with: { type: "json" } })).default;
    for (const flag of ["--version", "-V"]) {
      const r = mustSucceed(await cli(flag));
      expect(r.stdout.toString().trim()).toBe(version);
    }
  });
});
