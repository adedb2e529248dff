import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { Readable } from "node:stream";
import {
  type ByteString,
  cleanEntryName,
  emptyHeader,
  encodeHeader,
  formatPaxTime,
  goPathClean,
  paxRecord,
  readTarEntries,
  type TarHeader,
  type TarType,
  toByteString,
} from "@seekable/format";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";

/** Test strings are byte strings already (one char per byte). */
const B = (s: string) => s as ByteString;

const require = createRequire(import.meta.url);
// tar-stream's block decoder (validates the checksum, joins the USTAR prefix).
const tsHeaders = require(join(dirname(require.resolve("tar-stream")), "headers.js")) as {
  decode(buf: Buffer, enc: string, allowUnknown: boolean): Record<string, unknown> | null;
};

const O7 = 8 ** 7; // largest+1 value of an 8-byte octal field (7 digits + NUL)
const O11 = 8 ** 11; // 12-byte fields

/** Independent PAX record parser over byte strings. */
function parsePax(data: Buffer): Map<string, string> {
  const m = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    const len = Number(data.toString("latin1", p, sp));
    expect(Number.isInteger(len) && len > 0).toBe(true);
    const rec = data.toString("latin1", sp + 1, p + len);
    expect(rec.endsWith("\n")).toBe(true);
    const eq = rec.indexOf("=");
    m.set(rec.slice(0, eq), rec.slice(eq + 1, -1));
    p += len;
  }
  return m;
}

function octal(b: Buffer, off: number, size: number): number {
  const s = b.toString("latin1", off, off + size);
  // Go: zero-padded octal, NUL-terminated when there is room.
  if (size < 12 || s.length === size) expect(s).toMatch(/^[0-7]*\0?$/);
  return Number.parseInt(s.replace(/\0.*$/s, "") || "0", 8);
}

function cstr(b: Buffer, off: number, size: number): string {
  const s = b.toString("latin1", off, off + size);
  const z = s.indexOf("\0");
  return z < 0 ? s : s.slice(0, z);
}

function checkChecksum(blk: Buffer): void {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : blk[i];
  const field = blk.toString("latin1", 148, 156);
  expect(field).toMatch(/^[0-7]{6}\0 $/);
  expect(Number.parseInt(field.slice(0, 6), 8)).toBe(sum);
  expect(blk.toString("latin1", 257, 265)).toBe("ustar\x0000");
}

interface Decoded {
  pax?: Map<string, string>;
  paxBlockName?: string;
  main: Buffer;
  name: string;
  linkname: string;
  uname: string;
  gname: string;
  uid: number;
  gid: number;
  size: number;
  mode: number;
  mtime: string;
  devmajor: number;
  devminor: number;
  type: string;
  xattrs: Map<string, string>;
}

/** Decodes the blocks of one entry's header(s). */
function decodeBlocks(buf: Buffer): Decoded {
  expect(buf.length % 512).toBe(0);
  let main = buf.subarray(0, 512);
  let pax: Map<string, string> | undefined;
  let paxBlockName: string | undefined;
  checkChecksum(main);
  const first = tsHeaders.decode(Buffer.from(main), "latin1", false);
  if (main[156] === 0x78) {
    expect(first?.type).toBe("pax-header");
    paxBlockName = cstr(main, 0, 100);
    const len = octal(main, 124, 12);
    const blocks = Math.ceil(len / 512);
    pax = parsePax(buf.subarray(512, 512 + len));
    expect(buf.subarray(512 + len, 512 + blocks * 512).every((x) => x === 0)).toBe(true);
    main = buf.subarray(512 + blocks * 512);
    expect(main.length).toBe(512);
    checkChecksum(main);
  } else {
    expect(buf.length).toBe(512);
  }
  const h = tsHeaders.decode(Buffer.from(main), "latin1", false) as Record<string, unknown>;
  const g = (k: string): string | undefined => pax?.get(k);
  const xattrs = new Map<string, string>();
  for (const [k, v] of pax ?? []) if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice(13), v);
  return {
    pax,
    paxBlockName,
    main,
    name: g("path") ?? (h.name as string),
    linkname: g("linkpath") ?? cstr(main, 157, 100),
    uname: g("uname") ?? cstr(main, 265, 32),
    gname: g("gname") ?? cstr(main, 297, 32),
    uid: g("uid") !== undefined ? Number(g("uid")) : octal(main, 108, 8),
    gid: g("gid") !== undefined ? Number(g("gid")) : octal(main, 116, 8),
    size: g("size") !== undefined ? Number(g("size")) : octal(main, 124, 12),
    mode: octal(main, 100, 8),
    mtime: g("mtime") ?? String(octal(main, 136, 12)),
    devmajor: octal(main, 329, 8),
    devminor: octal(main, 337, 8),
    type: String.fromCharCode(main[156]),
    xattrs,
  };
}

const isAscii = (s: string): boolean => [...s].every((c) => c.charCodeAt(0) < 0x80);
/** Go's toASCII: drops NUL and every byte >= 0x80. */
const toAscii = (s: string): string =>
  [...s].filter((c) => c.charCodeAt(0) > 0 && c.charCodeAt(0) < 0x80).join("");

/** Does some '/' split the name into a USTAR prefix (<=155) and name (1..100)? */
function ustarSplittable(name: string): boolean {
  if (!isAscii(name)) return false;
  for (let i = 1; i < name.length; i++) {
    if (name[i] === "/" && i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return true;
    }
  }
  return false;
}

/** Independent statement of "everything fits USTAR" (Go's allowedFormats without Format). */
function fitsUstar(h: TarHeader): boolean {
  const sec = !h.keepSubsecond && h.mtimeNsec >= 5e8 ? h.mtimeSec + 1 : h.mtimeSec;
  return (
    isAscii(h.name) &&
    (h.name.length <= 100 || ustarSplittable(h.name)) &&
    isAscii(h.linkname) &&
    h.linkname.length <= 100 &&
    isAscii(h.uname) &&
    h.uname.length <= 32 &&
    isAscii(h.gname) &&
    h.gname.length <= 32 &&
    h.uid < O7 &&
    h.gid < O7 &&
    h.size < O11 &&
    sec >= 0 &&
    sec < O11 &&
    h.xattrs.size === 0 &&
    h.paxExtra.size === 0 &&
    !h.keepSubsecond
  );
}

/** Go writes an extended header only when a record is needed (even for PAX-format input). */
function needsRecords(h: TarHeader): boolean {
  return (
    !isAscii(h.name) ||
    h.name.length > 100 ||
    !isAscii(h.linkname) ||
    h.linkname.length > 100 ||
    !isAscii(h.uname) ||
    h.uname.length > 32 ||
    !isAscii(h.gname) ||
    h.gname.length > 32 ||
    h.uid >= O7 ||
    h.gid >= O7 ||
    h.size >= O11 ||
    h.mtimeSec < 0 ||
    h.mtimeSec >= O11 ||
    (h.keepSubsecond && h.mtimeNsec !== 0) ||
    h.xattrs.size > 0 ||
    h.paxExtra.size > 0
  );
}

// ---- arbitraries ----
const asciiSeg = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,30}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z][a-z0-9]{89,109}$/) },
);
const utf8Seg = fc
  .string({ unit: "binary", minLength: 1, maxLength: 12 })
  .filter((s) => !s.includes("\0") && !s.includes("/") && s !== "." && s !== "..")
  .map(toByteString);
const nameArb = fc
  .array(fc.oneof({ weight: 5, arbitrary: asciiSeg }, { weight: 1, arbitrary: utf8Seg }), {
    minLength: 1,
    maxLength: 14,
  })
  .map((a) => a.join("/"))
  .filter((n) => n.length <= 300);
const idArb = fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 2 ** 31 }));
const unameArb = fc.oneof(
  fc.constant(""),
  fc.stringMatching(/^[a-z_][a-z0-9_-]{0,40}$/),
  fc
    .string({ unit: "binary", maxLength: 10 })
    .filter((s) => !s.includes("\0"))
    .map(toByteString),
);
const xattrArb = fc
  .array(
    fc.tuple(
      fc.stringMatching(/^(user|security|trusted)\.[a-z0-9._-]{1,20}$/),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString("latin1")),
    ),
    { maxLength: 3 },
  )
  .map((a) => new Map(a));

const headerArb: fc.Arbitrary<TarHeader> = fc
  .record({
    type: fc.constantFrom<TarType>("0", "0", "0", "1", "2", "3", "4", "5", "6"),
    name: nameArb,
    linkname: fc.oneof(nameArb, fc.constant("../x")),
    mode: fc.oneof(fc.integer({ min: 0, max: 0o7777 }), fc.integer({ min: 0, max: 0o177777 })),
    uid: idArb,
    gid: idArb,
    size: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 2 ** 40 })),
    mtimeSec: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 34 })),
    mtimeNsec: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 999_999_999 })),
    keepSubsecond: fc.boolean(),
    uname: unameArb,
    gname: unameArb,
    devmajor: fc.integer({ min: 0, max: O7 - 1 }),
    devminor: fc.integer({ min: 0, max: O7 - 1 }),
    xattrs: fc.oneof({ weight: 3, arbitrary: fc.constant(new Map<string, string>()) }, xattrArb),
  })
  .map((r) => {
    const h = emptyHeader(B(r.name), r.type);
    Object.assign(h, r);
    if (r.type === "5") h.name = B(`${r.name}/`);
    if (r.type !== "0") h.size = 0;
    if (r.type !== "1" && r.type !== "2") h.linkname = B("");
    if (r.type !== "3" && r.type !== "4") {
      h.devmajor = 0;
      h.devminor = 0;
    }
    h.xattrs = new Map(r.xattrs) as Map<ByteString, ByteString>;
    return h;
  });

function expectRoundTrip(h: TarHeader, d: Decoded): void {
  expect(d.name).toBe(h.name);
  expect(d.type).toBe(h.type);
  expect(d.linkname).toBe(h.linkname);
  expect(d.uname).toBe(h.uname);
  expect(d.gname).toBe(h.gname);
  expect(d.uid).toBe(h.uid);
  expect(d.gid).toBe(h.gid);
  expect(d.size).toBe(h.size);
  expect(d.mode).toBe(h.mode);
  expect(d.devmajor).toBe(h.devmajor);
  expect(d.devminor).toBe(h.devminor);
  if (h.keepSubsecond) {
    expect(d.mtime).toBe(formatPaxTime(h.mtimeSec, h.mtimeNsec));
  } else {
    const sec = h.mtimeNsec >= 5e8 ? h.mtimeSec + 1 : h.mtimeSec; // Go rounds to the second
    expect(d.mtime).toBe(String(sec));
  }
  expect(d.xattrs).toEqual(h.xattrs);
}

describe("encodeHeader", () => {
  it("encodes arbitrary headers that decode to the same fields, checksums valid", () => {
    fc.assert(
      fc.property(headerArb, (h) => {
        const d = decodeBlocks(encodeHeader(h));
        expectRoundTrip(h, d);
      }),
      { numRuns: 1500 },
    );
  });

  it("writes USTAR when everything fits, PAX otherwise", () => {
    fc.assert(
      fc.property(headerArb, (h) => {
        const b = encodeHeader(h);
        const d = decodeBlocks(b);
        if (fitsUstar(h) || (h.keepSubsecond && !needsRecords(h))) {
          expect(b.length).toBe(512);
          // Long ASCII names are split at the last possible '/', as Go does.
          if (h.name.length > 100 && !h.keepSubsecond) {
            const prefix = cstr(d.main, 345, 155);
            const rest = cstr(d.main, 0, 100);
            expect(`${prefix}/${rest}`).toBe(h.name);
          }
        } else {
          expect(b[156]).toBe(0x78);
          expect(d.pax).toBeDefined();
        }
      }),
      { numRuns: 1500 },
    );
  });

  it("PAX: records sorted, only the fields that do not fit, Go's PaxHeaders.0 name", () => {
    fc.assert(
      fc.property(headerArb, (h) => {
        const b = encodeHeader(h);
        fc.pre(b[156] === 0x78);
        const d = decodeBlocks(b);
        const keys = [...(d.pax as Map<string, string>).keys()];
        expect(keys).toEqual([...keys].sort());
        const pax = d.pax as Map<string, string>;
        // A field goes to PAX iff it does not fit its USTAR field.
        expect(pax.has("uid")).toBe(h.uid >= O7);
        expect(pax.has("gid")).toBe(h.gid >= O7);
        expect(pax.has("size")).toBe(h.size >= O11);
        expect(pax.has("uname")).toBe(!isAscii(h.uname) || h.uname.length > 32);
        expect(pax.has("linkpath")).toBe(!isAscii(h.linkname) || h.linkname.length > 100);
        expect(pax.has("path")).toBe(!isAscii(h.name) || h.name.length > 100);
        // Numeric fields that do not fit are zero in the main header.
        if (h.uid >= O7) expect(octal(d.main, 108, 8)).toBe(0);
        if (h.size >= O11) expect(octal(d.main, 124, 12)).toBe(0);
        // The main header's name is the ASCII part of the name, truncated, no trailing '/'
        // at the cut.
        const ascii = toAscii(h.name);
        const field = cstr(d.main, 0, 100);
        if (ascii.length <= 100) expect(field).toBe(ascii);
        else expect(field).toBe(ascii.slice(0, 100).replace(/\/+$/, ""));
        // path.Join(dir, "PaxHeaders.0", file), ASCII only, <= 100 bytes, no trailing '/'.
        const slash = h.name.lastIndexOf("/");
        const joined = posix.join(
          h.name.slice(0, slash + 1),
          "PaxHeaders.0",
          h.name.slice(slash + 1),
        );
        const want = toAscii(joined).slice(0, 100).replace(/\/+$/, "");
        expect(d.paxBlockName).toBe(want);
        // The x header itself: mode/uid/gid/mtime 0, typeflag x.
        expect(octal(b, 100, 8)).toBe(0);
        expect(octal(b, 136, 12)).toBe(0);
      }),
      { numRuns: 1500 },
    );
  });

  it("known encodings", () => {
    // Long ASCII name split into prefix + name.
    const long = `${"d".repeat(120)}/${"f".repeat(90)}`;
    const h1 = emptyHeader(B(long), "0");
    const b1 = encodeHeader(h1);
    expect(b1.length).toBe(512);
    expect(cstr(b1, 345, 155)).toBe("d".repeat(120));
    expect(cstr(b1, 0, 100)).toBe("f".repeat(90));
    // Go's zero-padded octal with NUL, checksum "NNNNNN\0 ".
    const h2 = emptyHeader(B("a"), "0");
    Object.assign(h2, { mode: 0o644, uid: 1000, gid: 1000, size: 5, mtimeSec: 1700000000 });
    const b2 = encodeHeader(h2);
    expect(b2.toString("latin1", 100, 108)).toBe("0000644\0");
    expect(b2.toString("latin1", 108, 116)).toBe("0001750\0");
    expect(b2.toString("latin1", 124, 136)).toBe("00000000005\0");
    expect(b2.toString("latin1", 136, 148)).toBe("14524770400\0");
    expect(b2.toString("latin1", 329, 345)).toBe("0000000\x000000000\0");
    // Sub-second time, PAX: "mtime=1700000000.5".
    const h3 = emptyHeader(B("t"), "0");
    Object.assign(h3, { mtimeSec: 1700000000, mtimeNsec: 500_000_000, keepSubsecond: true });
    expect(decodeBlocks(encodeHeader(h3)).pax?.get("mtime")).toBe("1700000000.5");
    // The same time without keepSubsecond is rounded (half up) into a USTAR header.
    h3.keepSubsecond = false;
    const b3 = encodeHeader(h3);
    expect(b3.length).toBe(512);
    expect(octal(b3, 136, 12)).toBe(1700000001);
    // atime/ctime carried as PAX records.
    const h4 = emptyHeader(B("dir/f"), "0");
    h4.paxExtra.set("atime", B("1.5"));
    h4.paxExtra.set("ctime", B("2"));
    h4.keepSubsecond = true;
    const d4 = decodeBlocks(encodeHeader(h4));
    expect([...(d4.pax ?? [])]).toEqual([
      ["atime", "1.5"],
      ["ctime", "2"],
    ]);
    expect(d4.paxBlockName).toBe("dir/PaxHeaders.0/f");
  });

  it("paxRecord length counts itself", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-zA-Z.]{1,30}$/),
        fc.string({ unit: "binary", maxLength: 2000 }).map(toByteString),
        (k, v) => {
          const r = paxRecord(k, v);
          const len = Number(r.slice(0, r.indexOf(" ")));
          expect(len).toBe(r.length);
          expect(r).toBe(`${len} ${k}=${v}\n`);
        },
      ),
    );
    expect(paxRecord("path", "a".repeat(90))).toBe(`99 path=${"a".repeat(90)}\n`);
    expect(paxRecord("path", "a".repeat(91))).toBe(`101 path=${"a".repeat(91)}\n`);
  });

  it("formatPaxTime follows Go's formatPAXTime", () => {
    expect(formatPaxTime(1, 0)).toBe("1");
    expect(formatPaxTime(1, 500_000_000)).toBe("1.5");
    expect(formatPaxTime(1, 123)).toBe("1.000000123");
    expect(formatPaxTime(-1, 500_000_000)).toBe("-0.5");
    expect(formatPaxTime(-2, 100_000_000)).toBe("-1.9");
  });
});

describe("tar streams of encoded headers", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A whole tar: encoded headers, zero-filled bodies, padding, trailer. */
  function buildTar(hs: TarHeader[], body = (h: TarHeader) => Buffer.alloc(h.size, 0x61)): Buffer {
    const parts: Buffer[] = [];
    for (const h of hs) {
      parts.push(encodeHeader(h));
      if (h.type === "0" && h.size > 0) {
        parts.push(body(h), Buffer.alloc((512 - (h.size % 512)) % 512));
      }
    }
    parts.push(Buffer.alloc(1024));
    return Buffer.concat(parts);
  }

  const smallHeaderArb = headerArb.map((h) => {
    if (h.size > 5000) h.size %= 5000;
    return h;
  });

  it("tar-stream (as seekable reads input) extracts the same entries, bodies aligned", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(smallHeaderArb, { minLength: 1, maxLength: 6 }), async (hs) => {
        const got: { header: TarHeader; body: Buffer }[] = [];
        for await (const e of readTarEntries(Readable.from([buildTar(hs)]))) {
          const chunks: Buffer[] = [];
          for await (const c of e.body) chunks.push(Buffer.from(c));
          got.push({ header: e.header, body: Buffer.concat(chunks) });
        }
        expect(got.length).toBe(hs.length);
        got.forEach(({ header, body }, i) => {
          const h = hs[i];
          expect(header.name).toBe(h.name);
          expect(header.size).toBe(h.type === "0" ? h.size : 0);
          expect(body.length).toBe(h.type === "0" ? h.size : 0);
          expect(header.uid).toBe(h.uid);
          expect(header.gid).toBe(h.gid);
          if (h.linkname) expect(header.linkname).toBe(h.linkname);
          for (const [k, v] of h.xattrs) expect(header.xattrs.get(k)).toBe(v);
        });
      }),
      { numRuns: 100 },
    );
  });

  it("GNU tar lists the same names, owners, sizes, modes and times", () => {
    const dir = mkdtempSync(join(tmpdir(), "seekable-hdr-"));
    dirs.push(dir);
    const mk = (name: string, type: TarType, o: Partial<TarHeader> = {}): TarHeader =>
      Object.assign(
        emptyHeader(toByteString(name), type),
        { mode: 0o644, mtimeSec: 1700000000 },
        o,
      );
    const hs: TarHeader[] = [
      mk("short", "0", { size: 5, uid: 1000, gid: 1001 }),
      mk(`${"d".repeat(120)}/${"f".repeat(90)}`, "0", { size: 3 }), // USTAR prefix split
      mk(`${"x".repeat(150)}/${"y".repeat(120)}`, "0", { size: 1 }), // PAX path
      mk("caf\u00e9/\u65e5\u672c\u8a9e.txt", "0", { size: 2 }), // UTF-8 -> PAX path
      mk("big-ids", "0", { uid: 2 ** 31, gid: 3_000_000, size: 4 }), // PAX uid/gid
      mk("nsec", "0", { mtimeNsec: 250_000_000, keepSubsecond: true }), // PAX mtime
      mk("future", "0", { mtimeSec: 2 ** 34 }), // mtime beyond 11 octal digits
      mk("dir/", "5", { mode: 0o755 }),
      mk("sym", "2", { linkname: B(`${"l".repeat(130)}/target`), mode: 0o777 }),
      mk("hard", "1", { linkname: B("short") }),
      mk("xattr", "0", { size: 1, xattrs: new Map([[B("user.k"), B("\x00\xff\x01")]]) }),
    ];
    const tarPath = join(dir, "t.tar");
    writeFileSync(tarPath, buildTar(hs));
    const out = execFileSync(
      "tar",
      ["--numeric-owner", "--full-time", "--quoting-style=literal", "-tvf", tarPath],
      { env: { ...process.env, TZ: "UTC", LC_ALL: "C.UTF-8" } },
    )
      .toString("latin1")
      .trimEnd()
      .split("\n");
    expect(out.length).toBe(hs.length);
    out.forEach((line, i) => {
      const h = hs[i];
      const m = /^(\S{10}) (\d+)\/(\d+)\s+(\d+) (\S+ \S+)\s+(.*)$/.exec(line);
      expect(m, line).not.toBeNull();
      const [, perm, uid, gid, size, time, rest] = m as RegExpExecArray;
      expect(perm[0]).toBe({ "0": "-", "1": "h", "2": "l", "5": "d" }[h.type as string]);
      expect(Number(uid)).toBe(h.uid);
      expect(Number(gid)).toBe(h.gid);
      expect(Number(size)).toBe(h.size);
      const sec = h.mtimeSec;
      const t = new Date(sec * 1000).toISOString().replace("T", " ").slice(0, 19);
      const frac =
        h.keepSubsecond && h.mtimeNsec
          ? `.${String(h.mtimeNsec).padStart(9, "0")}`.replace(/0+$/, "")
          : "";
      expect(time).toBe(`${t}${frac}`);
      let name: string = h.name;
      if (h.type === "2") name += ` -> ${h.linkname}`;
      if (h.type === "1") name += ` link to ${h.linkname}`;
      expect(rest).toBe(name);
    });
  });
});

describe("path cleaning", () => {
  it("goPathClean matches Go's path.Clean on known cases", () => {
    const cases: [string, string][] = [
      ["", "."],
      ["/", "/"],
      ["a/b/../c", "a/c"],
      ["../../a", "../../a"],
      ["/../a", "/a"],
      ["a//b/./c/", "a/b/c"],
      ["./", "."],
      ["a/..", "."],
      ["/a/../..", "/"],
    ];
    for (const [i, o] of cases) expect(goPathClean(i), i).toBe(o);
  });

  it("cleanEntryName = path.Clean('/'+name) without the leading '/'", () => {
    expect(cleanEntryName("./etc/passwd")).toBe("etc/passwd");
    expect(cleanEntryName("bin/")).toBe("bin");
    expect(cleanEntryName("./")).toBe("");
    expect(cleanEntryName("../../x")).toBe("x");
    fc.assert(
      fc.property(fc.array(fc.constantFrom("a", "b", ".", "..", ""), { maxLength: 8 }), (segs) => {
        const n = segs.join("/");
        const want = posix.normalize(`/${n}`).replace(/\/+$/, "").slice(1);
        expect(cleanEntryName(n)).toBe(want);
      }),
    );
  });
});
