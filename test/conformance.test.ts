// Conformance with the reference implementation (containerd/stargz-snapshotter estargz v0.12.0,
// Debian's Go package, wrapped by tools/reference as `estargz-ref`), both directions:
//   a. seekable writes -> the reference reads (Open, VerifyTOC, every chunk through its
//      verifier, every file through OpenFile, metadata, entry order, the whole tar.gz stream);
//   b. the reference writes -> seekable reads (verify, cat, ls);
//   c. legacy stargz (crfs layout) -> seekable reads;
//   d. landmark placement and entry order, compared with the reference's own output.
// Fixtures (tools/reference/fixtures.go) cover PAX, GNU, hardlinks, devices, xattrs,
// duplicates, reserved names, chunk-size edges; the global setup builds them once.
import { mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { cleanEntryName, type ExpectedEntry, expectedFor, LANDMARKS } from "./helpers/expected.js";
import { gunzipDigest, makeTempDir, sha256, sha256File } from "./helpers/files.js";
import { fixture } from "./helpers/paths.js";
import {
  describeRun,
  jsonOut,
  limiter,
  memo,
  mustSucceed,
  type RunResult,
  reference,
  run,
  seekable,
} from "./helpers/run.js";

const FIXTURES = ["features.tar", "features.tar.gz", "gnu.tar", "dups.tar", "big.tar"];
/** Two cores: at most two CPU-bound child processes at once. */
const pool = limiter(2);

let tmp: { path: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir("conformance");
});
afterAll(async () => {
  await tmp?.remove();
});

interface ConvertReport {
  digest: string;
  size: number;
  diffID: string;
  tocDigest: string;
  uncompressedSize: number;
  entries: number;
  chunks: number;
}

interface RefBuildReport {
  tocDigest: string;
  diffID: string;
  size: number;
  digest: string;
}

interface CheckSummary {
  ok: boolean;
  format: string;
  entries: number;
  files: number;
  chunks: number;
  diffID: string;
}

interface VerifyReport {
  ok: boolean;
  format: string;
  tocDigest: string;
  tocDigestChecked: boolean;
  files: number;
  chunks: number;
}

interface LsRecord {
  name: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  userName: string;
  groupName: string;
  modtime: string;
  linkName?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, string>;
  digest?: string;
}

interface TocJson {
  version: number;
  entries: { name: string; type: string }[];
}

const safe = (s: string) => s.replace(/[^\w.-]+/g, "_");
const prioritizedList = (fx: string) => fixture(`${fx}.prioritized.txt`);

function expectOk(r: RunResult): void {
  expect(r.code, describeRun(r)).toBe(0);
}

// ---------------------------------------------------------------------------------------------
// Conversions, memoized so every assertion reuses the same blob.

const SEEKABLE_VARIANTS: Record<string, (fx: string) => string[]> = {
  default: () => [],
  "chunk-65536": () => ["--chunk-size", "65536"],
  "chunk-1000000-level-9": () => ["--chunk-size", "1000000", "--level", "9"],
  prioritized: (fx) => ["--prioritized-files", prioritizedList(fx)],
  "threads-1": () => ["--threads", "1"],
  "threads-2": () => ["--threads", "2"],
};

const seekableConvert = memo(
  (fx: string, variant: string) => `${fx}/${variant}`,
  async (fx: string, variant: string) => {
    const blob = join(tmp.path, `seekable-${safe(fx)}-${variant}.esgz`);
    const r = mustSucceed(
      await pool(() =>
        seekable("convert", fixture(fx), blob, "--json", ...SEEKABLE_VARIANTS[variant](fx)),
      ),
    );
    return { blob, report: jsonOut<ConvertReport>(r) };
  },
);

interface RefVariant {
  name: string;
  args: string[];
  prioritized: boolean;
}

/**
 * The reference's builds: chunk sizes {default 4 MiB, 65536, 1000} x {plain, prioritized} x
 * parallelism {1, 2}. big.tar (18 MiB) is built at level 1 (level 9 takes ~3 s a build there)
 * plus once at level 9, and without 1000-byte chunks (19k gzip members: ~17 s a build).
 * features.tar.gz gives the reference the same layer as features.tar: defaults only.
 */
function refVariants(fx: string): RefVariant[] {
  if (fx === "features.tar.gz") {
    return [{ name: "default-p2", args: ["-parallelism", "2"], prioritized: false }];
  }
  const big = fx === "big.tar";
  const out: RefVariant[] = [];
  for (const chunk of big ? [0, 65536] : [0, 65536, 1000]) {
    for (const prioritized of [false, true]) {
      for (const par of [1, 2]) {
        const args = ["-parallelism", String(par)];
        if (chunk) args.push("-chunk-size", String(chunk));
        if (big) args.push("-level", "1");
        if (prioritized) args.push("-prioritized", prioritizedList(fx));
        out.push({
          name: `chunk-${chunk || "default"}${prioritized ? "-prioritized" : ""}-p${par}${big ? "-level-1" : ""}`,
          args,
          prioritized,
        });
      }
    }
  }
  if (big)
    out.push({ name: "default-p2-level-9", args: ["-parallelism", "2"], prioritized: false });
  return out;
}

const refBuild = memo(
  (fx: string, v: RefVariant) => `${fx}/${v.name}`,
  async (fx: string, v: RefVariant) => {
    const blob = join(tmp.path, `ref-${safe(fx)}-${v.name}.esgz`);
    const r = mustSucceed(await pool(() => reference("build", fixture(fx), blob, ...v.args)));
    return { blob, report: jsonOut<RefBuildReport>(r) };
  },
);

// ---------------------------------------------------------------------------------------------
// Reading a blob with seekable and comparing with the expectations.

async function seekableToc(
  blob: string,
): Promise<{ bytes: Buffer; toc: TocJson; names: string[] }> {
  const r = mustSucceed(await pool(() => seekable("toc", blob)));
  const toc = JSON.parse(r.stdout.toString("utf8")) as TocJson;
  const names = toc.entries.filter((e) => e.type !== "chunk").map((e) => cleanEntryName(e.name));
  return { bytes: r.stdout, toc, names };
}

/** `seekable verify`, `cat` of every file and `ls --json`, checked against the source. */
async function readBackWithSeekable(
  fx: string,
  blob: string,
  opts: { tocDigest?: string; legacy?: boolean },
): Promise<void> {
  const exp = expectedFor(fx);
  const regs = exp.entries.filter((e) => e.type === "reg");

  const verifyArgs = [
    "verify",
    blob,
    "--json",
    ...(opts.tocDigest ? ["--toc-digest", opts.tocDigest] : []),
  ];
  const v = await pool(() => seekable(...verifyArgs));
  expectOk(v);
  const vr = jsonOut<VerifyReport>(v);
  expect(vr.ok).toBe(true);
  expect(vr.format).toBe(opts.legacy ? "stargz" : "estargz");
  if (opts.tocDigest) {
    expect(vr.tocDigestChecked).toBe(true);
    expect(vr.tocDigest).toBe(opts.tocDigest);
  }
  expect(vr.files, "regular files verified (landmark included)").toBe(
    regs.length + (opts.legacy ? 0 : 1),
  );

  // cat every regular file and hardlink in one call; split the output by expected sizes.
  const files = exp.entries.filter((e) => e.contentDigest !== undefined);
  const c = await pool(() => seekable("cat", blob, ...files.map((f) => f.name)));
  expectOk(c);
  let off = 0;
  const wrong: string[] = [];
  for (const f of files) {
    const got = c.stdout.subarray(off, off + f.contentSize);
    off += f.contentSize;
    if (got.length !== f.contentSize || sha256(got) !== f.contentDigest) wrong.push(f.name);
  }
  expect(wrong, "files whose `seekable cat` content differs from the source").toEqual([]);
  expect(c.stdout.length).toBe(off);

  const l = await pool(() => seekable("ls", blob, "--json"));
  expectOk(l);
  compareListing(jsonOut<LsRecord[]>(l), exp.entries, !opts.legacy);
}

function compareListing(
  records: LsRecord[],
  expected: ExpectedEntry[],
  withLandmark: boolean,
): void {
  const byName = new Map(records.map((r) => [r.name, r]));
  const problems: string[] = [];
  for (const e of expected) {
    if (e.name === "") continue; // the root is not listed
    const r = byName.get(e.name);
    if (!r) {
      problems.push(`${JSON.stringify(e.name)}: not listed`);
      continue;
    }
    const got: Record<string, unknown> = {
      type: r.type,
      mode: r.mode,
      uid: r.uid,
      gid: r.gid,
      modtime: r.modtime,
      linkName: r.linkName ?? "",
      xattrs: r.xattrs ?? {},
    };
    const want: Record<string, unknown> = {
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      modtime: e.modtime,
      linkName: e.linkName,
      xattrs: e.xattrs,
    };
    if (e.type === "reg") {
      got.size = r.size;
      want.size = e.size;
      got.digest = r.digest;
      want.digest = e.digest;
    }
    if (e.type === "char" || e.type === "block") {
      got.dev = [r.devMajor, r.devMinor];
      want.dev = [e.devMajor, e.devMinor];
    }
    if (e.userName) {
      got.userName = r.userName;
      want.userName = e.userName;
    }
    if (e.groupName) {
      got.groupName = r.groupName;
      want.groupName = e.groupName;
    }
    for (const k of Object.keys(want)) {
      if (JSON.stringify(got[k]) !== JSON.stringify(want[k])) {
        problems.push(
          `${JSON.stringify(e.name)}: ${k} is ${JSON.stringify(got[k])}, want ${JSON.stringify(want[k])}`,
        );
      }
    }
  }
  // Anything else listed must be the landmark or an implicit parent directory.
  const names = new Set(expected.map((e) => e.name));
  const ancestors = new Set<string>();
  for (const n of names)
    for (let i = n.indexOf("/"); i > 0; i = n.indexOf("/", i + 1)) ancestors.add(n.slice(0, i));
  for (const r of records) {
    if (names.has(r.name)) continue;
    if (LANDMARKS.has(r.name) && withLandmark) continue;
    if (r.type === "dir" && ancestors.has(r.name)) continue;
    problems.push(`${JSON.stringify(r.name)}: listed but not in the source`);
  }
  expect(problems, "`seekable ls --json` differs from the source").toEqual([]);
}

// ---------------------------------------------------------------------------------------------

describe("a. seekable writes, the reference reads", () => {
  for (const fx of FIXTURES) {
    describe.concurrent(fx, () => {
      for (const variant of ["default", "chunk-65536", "chunk-1000000-level-9", "prioritized"]) {
        test(`${variant}: the reference opens it, verifies every chunk and reads every file identical`, async () => {
          const { blob, report } = await seekableConvert(fx, variant);
          const args = [
            "check",
            blob,
            "-toc-digest",
            report.tocDigest,
            "-tar",
            fixture(fx),
            "-diff-id",
            report.diffID,
          ];
          if (variant === "prioritized") args.push("-prioritized", prioritizedList(fx));
          const r = await pool(() => reference(...args));
          expectOk(r);
          const sum = jsonOut<CheckSummary>(r, true);
          expect(sum.ok).toBe(true);
          expect(sum.format).toBe("estargz");
          expect(sum.entries).toBe(expectedFor(fx).order.length);
          expect(report.entries).toBe(sum.entries);
        });
      }

      test("--threads 1, --threads 2 and the default give byte-identical blobs", async () => {
        const runs = await Promise.all(
          ["default", "threads-1", "threads-2"].map((v) => seekableConvert(fx, v)),
        );
        const digests = await Promise.all(runs.map((x) => sha256File(x.blob)));
        expect(digests[0], "the reported digest is the blob's sha256").toBe(runs[0].report.digest);
        expect(digests).toEqual([digests[0], digests[0], digests[0]]);
        expect(runs.map((x) => x.report.tocDigest)).toEqual(
          Array(3).fill(runs[0].report.tocDigest),
        );
      });

      for (const variant of ["default", "chunk-65536"]) {
        test(`${variant}: gunzips to a stream whose sha256 is the diffID, and GNU tar lists it`, async () => {
          const { blob, report } = await seekableConvert(fx, variant);
          const { digest, size } = await gunzipDigest(blob);
          expect(digest).toBe(report.diffID);
          expect(size).toBe(report.uncompressedSize);
          const t = await pool(() => run("tar", ["-tzf", blob]));
          expectOk(t);
          const lines = t.stdout.toString("utf8").trimEnd().split("\n");
          const order = expectedFor(fx).order;
          expect(lines.length, "entries listed by tar (TOC entry included)").toBe(order.length + 1);
          expect(lines[0]).toBe(".no.prefetch.landmark");
          expect(lines[lines.length - 1]).toBe("stargz.index.json");
        });
      }
    });
  }

  test("negative control: the reference check reports a blob that does not match its source", async () => {
    const { blob, report } = await seekableConvert("dups.tar", "default");
    const r = await pool(() =>
      reference("check", blob, "-toc-digest", report.tocDigest, "-tar", fixture("gnu.tar")),
    );
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stdout.toString("utf8")).toMatch(/^MISMATCH /m);
    const bad = await pool(() =>
      reference(
        "check",
        blob,
        "-toc-digest",
        `sha256:${"0".repeat(64)}`,
        "-tar",
        fixture("dups.tar"),
      ),
    );
    expect(bad.code, describeRun(bad)).toBe(1);
    expect(bad.stdout.toString("utf8")).toMatch(/VerifyTOC: invalid TOC JSON/);
  });
});

describe("b. the reference writes, seekable reads", () => {
  for (const fx of FIXTURES) {
    describe.concurrent(fx, () => {
      for (const v of refVariants(fx)) {
        test(`${v.name}: seekable verifies it, cats every file identical and lists the source's metadata`, async () => {
          const { blob, report } = await refBuild(fx, v);
          await readBackWithSeekable(fx, blob, { tocDigest: report.tocDigest });
        });
      }
    });
  }
});

describe("c. legacy stargz (crfs layout) written by estargz-ref legacy, seekable reads", () => {
  const cases: [string, number][] = [
    ["features.tar", 4 << 20],
    ["features.tar", 65536],
    ["features.tar", 1000],
    ["gnu.tar", 4 << 20],
    ["gnu.tar", 1000],
    ["dups.tar", 4 << 20],
    ["big.tar", 4 << 20],
    ["big.tar", 65536],
  ];
  describe.concurrent("legacy", () => {
    for (const [fx, chunk] of cases) {
      test(`${fx} chunk ${chunk}: the reference reads it, and so does seekable`, async () => {
        const blob = join(tmp.path, `legacy-${safe(fx)}-${chunk}.stargz`);
        mustSucceed(
          await pool(() => reference("legacy", fixture(fx), blob, "-chunk-size", String(chunk))),
        );
        const tail = (await readFile(blob)).subarray(-47);
        expect(tail.subarray(0, 4).toString("hex"), "gzip header with FEXTRA").toBe("1f8b0804");
        expect(tail.subarray(12, 34).toString("latin1")).toMatch(/^[0-9a-f]{16}STARGZ$/);
        // The fixture itself is a valid legacy blob: the reference reads every file back.
        const ref = await pool(() => reference("check", blob, "-legacy", "-tar", fixture(fx)));
        expectOk(ref);
        await readBackWithSeekable(fx, blob, { legacy: true });
      });
    }
  });
});

describe("d. landmarks and entry order", () => {
  const plain = FIXTURES.filter((f) => f !== "features.tar.gz");
  describe.concurrent("order", () => {
    for (const fx of plain) {
      test(`${fx} without prioritized files: .no.prefetch.landmark first, then the layer in order`, async () => {
        const { blob, report } = await seekableConvert(fx, "default");
        const { bytes, names } = await seekableToc(blob);
        expect(sha256(bytes), "`seekable toc` prints the bytes the TOC digest covers").toBe(
          report.tocDigest,
        );
        expect(names[0]).toBe(".no.prefetch.landmark");
        expect(names.filter((n) => LANDMARKS.has(n))).toEqual([".no.prefetch.landmark"]);
        expect(names).toEqual(expectedFor(fx).order);
        // Same as the reference's own output.
        const ref = await refBuild(fx, refVariants(fx)[0]);
        expect(names).toEqual((await seekableToc(ref.blob)).names);
      });

      test(`${fx} with prioritized files: the same order as the reference, .prefetch.landmark after them`, async () => {
        const { blob } = await seekableConvert(fx, "prioritized");
        const { names } = await seekableToc(blob);
        const refV = refVariants(fx).find((v) => v.prioritized) as RefVariant;
        const ref = await refBuild(fx, refV);
        const refToc = await seekableToc(ref.blob);
        expect(sha256(refToc.bytes)).toBe(ref.report.tocDigest);
        expect(names).toEqual(refToc.names);

        const k = names.indexOf(".prefetch.landmark");
        expect(names.filter((n) => LANDMARKS.has(n))).toEqual([".prefetch.landmark"]);
        const before = new Set(names.slice(0, k));
        const listed = (await readFile(prioritizedList(fx), "utf8"))
          .split("\n")
          .filter(Boolean)
          .map(cleanEntryName);
        for (const p of listed) expect(before.has(p), `${p} is before the landmark`).toBe(true);
        // Every entry before the landmark has its parents (when in the layer) and its hardlink
        // target before it.
        const exp = new Map(expectedFor(fx).entries.map((e) => [e.name, e]));
        names.slice(0, k).forEach((n, i) => {
          const earlier = new Set(names.slice(0, i));
          for (let j = n.lastIndexOf("/"); j > 0; j = n.lastIndexOf("/", j - 1)) {
            const parent = n.slice(0, j);
            if (exp.has(parent)) expect(earlier.has(parent), `${parent} before ${n}`).toBe(true);
          }
          const e = exp.get(n);
          if (e?.type === "hardlink")
            expect(earlier.has(cleanEntryName(e.linkName)), `${e.linkName} before ${n}`).toBe(true);
        });
      });
    }
  });

  test("features.tar prioritized: exactly the reference's prefix", async () => {
    const { names } = await seekableToc(
      (await seekableConvert("features.tar", "prioritized")).blob,
    );
    expect(names.slice(0, names.indexOf(".prefetch.landmark") + 1)).toEqual([
      "",
      "etc",
      "etc/passwd",
      "usr",
      "usr/bin",
      "usr/bin/tool",
      "usr/bin/tool-hardlink",
      "usr/bin/tool-hardlink2",
      "data",
      "data/deep",
      "data/deep/er",
      "data/deep/er/est",
      "data/deep/er/est/file.txt",
      "etc/hostname",
      "usr/bin/sh",
      ".prefetch.landmark",
    ]);
  });

  test("a non-ASCII prioritized path is found, in the reference's order", async () => {
    const list = fixture("unicode-prioritized.txt");
    const blob = join(tmp.path, "seekable-unicode-prioritized.esgz");
    const r = await pool(() =>
      seekable("convert", fixture("features.tar"), blob, "--json", "--prioritized-files", list),
    );
    expectOk(r);
    const refBlob = join(tmp.path, "ref-unicode-prioritized.esgz");
    mustSucceed(
      await pool(() => reference("build", fixture("features.tar"), refBlob, "-prioritized", list)),
    );
    expect((await seekableToc(blob)).names).toEqual((await seekableToc(refBlob)).names);
  });
});

describe("e. pre-POSIX headers and sparse files", () => {
  // The reference reads these (Go's archive/tar); seekable must read them the same way.
  for (const fx of ["v7.tar", "rega-dir.tar"]) {
    test(`${fx}: the reference's blob reads back in seekable`, async () => {
      const v = refVariants(fx)[0];
      const { blob, report } = await refBuild(fx, v);
      await readBackWithSeekable(fx, blob, { tocDigest: report.tocDigest });
    });
  }

  test("v7.tar: seekable converts a pre-POSIX (no magic) header, the reference accepts the blob", async () => {
    const { blob, report } = await seekableConvert("v7.tar", "default");
    const r = await pool(() =>
      reference("check", blob, "-toc-digest", report.tocDigest, "-tar", fixture("v7.tar")),
    );
    expectOk(r);
  });

  test("rega-dir.tar: a '\\0' typeflag entry with a trailing slash becomes a directory", async () => {
    const { blob, report } = await seekableConvert("rega-dir.tar", "default");
    const r = await pool(() =>
      reference("check", blob, "-toc-digest", report.tocDigest, "-tar", fixture("rega-dir.tar")),
    );
    expectOk(r);
  });

  test("an old-GNU sparse file is refused or expanded, never truncated", async () => {
    const dir = join(tmp.path, "sparse");
    await mkdir(dir, { recursive: true });
    const content = Buffer.concat([Buffer.alloc(1 << 20), Buffer.from("hello\n")]);
    const fh = await open(join(dir, "sparse.bin"), "w");
    await fh.write(content.subarray(1 << 20), 0, 6, 1 << 20); // a hole, then 6 bytes
    await fh.close();
    const tarPath = join(tmp.path, "sparse.tar");
    mustSucceed(
      await run("tar", ["--sparse", "--format=gnu", "-cf", tarPath, "-C", dir, "sparse.bin"]),
    );
    const blob = join(tmp.path, "sparse.esgz");
    const r = await pool(() => seekable("convert", tarPath, blob, "--json"));
    if (r.code !== 0) {
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr).toMatch(/sparse/i);
      return;
    }
    const c = await pool(() => seekable("cat", blob, "sparse.bin"));
    expectOk(c);
    expect(c.stdout.length).toBe(content.length);
    expect(sha256(c.stdout)).toBe(sha256(content));
  });
});
