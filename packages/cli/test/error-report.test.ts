// What the CLI prints for an error that ends a command: every package's errors are
// SeekableErrors with a kind and print as one line; anything else is a bug and says so, with
// its stack only under --debug.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError, LimitError, SeekableError, SpoolError } from "@seekable/format";
import { ImageRefError, parseImageRef } from "@seekable/image";
import { MultipartError, parseByteranges, parseReference, RegistryError } from "@seekable/registry";
import { describe, expect, it } from "vitest";
import { CliError, errorReport, exitCodeOf, isKnownError } from "../src/errors.js";

const HINT = "(an unexpected error: --debug prints where)";

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("did not throw");
}

describe("errorReport", () => {
  it("a bug prints one line with a hint to --debug, and its stack only with --debug", () => {
    const bug = thrown(() => (undefined as unknown as { x: number }).x);
    const line = errorReport(bug, "in.tar", false);
    expect(line).toMatch(/^seekable: in\.tar: Cannot read properties of undefined[^\n]*\n$/);
    expect(line.endsWith(`${HINT}\n`)).toBe(true);
    expect(line).not.toMatch(/\n\s+at /);
    const debug = errorReport(bug, "in.tar", true);
    expect(debug).not.toContain(HINT);
    expect(debug.split("\n")[1]).toMatch(/^TypeError: Cannot read properties/);
    expect(debug).toMatch(/\n\s+at /);
    expect(exitCodeOf(bug)).toBe(1);
  });

  it("a Node error with a code but no system call is a bug too (was taken for a user error)", () => {
    const e = Object.assign(new TypeError("The argument is invalid"), {
      code: "ERR_INVALID_ARG_TYPE",
    });
    expect(isKnownError(e)).toBe(false);
    expect(errorReport(e, undefined, false)).toBe(`seekable: The argument is invalid ${HINT}\n`);
  });

  it("registry errors print as one line, with a registry code or without one", async () => {
    const withCode = new RegistryError("docker://r/x:1", "manifest unknown", {
      kind: "not-found",
      code: "MANIFEST_UNKNOWN",
    });
    const without = new RegistryError("docker://r/x:1", "connection refused", { kind: "network" });
    for (const e of [withCode, without]) {
      expect(e).toBeInstanceOf(SeekableError);
      expect(errorReport(e, "docker://r/x:1", false)).toBe(`seekable: ${e.message}\n`);
    }
    expect(without.kind).toBe("network");
    const bad = thrown(() => parseReference("a b/c"));
    expect(bad).toBeInstanceOf(RegistryError);
    expect((bad as SeekableError).kind).toBe("usage");
  });

  it("a failed system call is the user's to fix: one line, no hint", async () => {
    const dir = await mkdtemp(join(tmpdir(), "error-report-"));
    const { open } = await import("node:fs/promises");
    const e = await open(join(dir, "missing")).catch((err: unknown) => err);
    expect(isKnownError(e)).toBe(true);
    expect(errorReport(e, undefined, false)).toBe(
      `seekable: ${join(dir, "missing")}: no such file or directory\n`,
    );
  });

  it("every package's errors are SeekableErrors with a kind", () => {
    const ref = thrown(() => parseImageRef("nope"));
    expect(ref).toBeInstanceOf(ImageRefError);
    const multipart = thrown(() => parseByteranges(Buffer.from("no boundary here"), "b"));
    expect(multipart).toBeInstanceOf(MultipartError);
    const cases: [unknown, string][] = [
      [ref, "usage"],
      [multipart, "protocol"],
      [new SpoolError("/tmp/x", new Error("ENOSPC")), "system"],
      [new FormatError("bad tar"), "input"],
      [new LimitError("too many entries"), "limit"],
      [new CliError("out: disk full", true, { kind: "system" }), "system"],
    ];
    for (const [e, kind] of cases) {
      expect(e).toBeInstanceOf(SeekableError);
      expect((e as SeekableError).kind).toBe(kind);
      expect(isKnownError(e)).toBe(true);
      expect(errorReport(e, undefined, false)).not.toContain(HINT);
    }
  });
});
