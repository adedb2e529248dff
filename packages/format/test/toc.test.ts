import {
  FormatError,
  parseToc,
  serializeToc,
  sha256Digest,
  type Toc,
  type TocEntry,
  toByteString,
} from "@seekable/format";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const D = (c: string): string => `sha256:${c.repeat(64).slice(0, 64)}`;
const DA = "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
const DB = "sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";
const DC = "sha256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6";

// Go struct field order of estargz.TOCEntry.
const GO_ORDER = [
  "name",
  "type",
  "size",
  "modtime",
  "linkName",
  "mode",
  "uid",
  "gid",
  "userName",
  "groupName",
  "offset",
  "innerOffset",
  "devMajor",
  "devMinor",
  "xattrs",
  "digest",
  "chunkOffset",
  "chunkSize",
  "chunkDigest",
];

/** The fixed TOC; strings are byte strings (UTF-8 bytes, one char per byte). */
const FIXED: Toc = {
  version: 1,
  entries: [
    {
      name: ".no.prefetch.landmark",
      type: "reg",
      size: 1,
      offset: 93,
      digest: DA,
      chunkDigest: DA,
    },
    {
      name: "bin/",
      type: "dir",
      modtime: "2024-01-01T00:00:00Z",
      mode: 16877,
      uid: 0,
      gid: 0,
      userName: "root",
      groupName: "root",
    },
    {
      name: "bin/a<b>&c",
      type: "reg",
      size: 5000,
      modtime: "2024-02-29T23:59:59Z",
      mode: 493,
      uid: 1000,
      gid: 1000,
      userName: "user",
      groupName: "",
      offset: 1234,
      xattrs: {
        "user.z": "dg==",
        "security.capability": "AAFiaW5hcnn/",
        [toByteString("user.\uff21")]: "",
        [toByteString("user.\u{1f600}")]: "dg==",
        "user.Z": "dg==",
      },
      digest: DB,
      chunkSize: 4096,
      chunkDigest: DC,
    },
    { name: "bin/a<b>&c", type: "chunk", offset: 99999, chunkOffset: 4096, chunkDigest: DA },
    { name: "dev/null", type: "char", mode: 8630, devMajor: 1, devMinor: 3 },
    { name: "lnk", type: "symlink", linkName: toByteString("bin/\u2028x\u00e9"), mode: 511 },
    { name: "hl", type: "hardlink", linkName: "bin/a<b>&c", uid: 7, gid: 8 },
    {
      name: 'caf\xc3\xa9\xff"\\\t',
      type: "fifo",
      size: 0,
      modtime: "",
      linkName: "",
      mode: 0,
      offset: 0,
      innerOffset: 0,
      xattrs: {},
      digest: "",
      chunkOffset: 0,
      chunkSize: 0,
      chunkDigest: "",
    },
    { name: "m", type: "reg", size: 10, offset: 500, innerOffset: 7, digest: DC, chunkDigest: DC },
  ],
};

// Written by hand from Go's json.MarshalIndent(toc, "", "\t") rules: struct order, omitempty,
// tab indent, ": ", HTML escapes, \u2028, invalid UTF-8 byte -> \ufffd, map keys sorted by
// bytes (U+FF21 = ef bc a1 sorts before U+1F600 = f0 9f 98 80), []byte as padded base64.
const FIXED_GO = `{
	"version": 1,
	"entries": [
		{
			"name": ".no.prefetch.landmark",
			"type": "reg",
			"size": 1,
			"offset": 93,
			"digest": "${DA}",
			"chunkDigest": "${DA}"
		},
		{
			"name": "bin/",
			"type": "dir",
			"modtime": "2024-01-01T00:00:00Z",
			"mode": 16877,
			"userName": "root",
			"groupName": "root"
		},
		{
			"name": "bin/a\\u003cb\\u003e\\u0026c",
			"type": "reg",
			"size": 5000,
			"modtime": "2024-02-29T23:59:59Z",
			"mode": 493,
			"uid": 1000,
			"gid": 1000,
			"userName": "user",
			"offset": 1234,
			"xattrs": {
				"security.capability": "AAFiaW5hcnn/",
				"user.Z": "dg==",
				"user.z": "dg==",
				"user.\xef\xbc\xa1": "",
				"user.\xf0\x9f\x98\x80": "dg=="
			},
			"digest": "${DB}",
			"chunkSize": 4096,
			"chunkDigest": "${DC}"
		},
		{
			"name": "bin/a\\u003cb\\u003e\\u0026c",
			"type": "chunk",
			"offset": 99999,
			"chunkOffset": 4096,
			"chunkDigest": "${DA}"
		},
		{
			"name": "dev/null",
			"type": "char",
			"mode": 8630,
			"devMajor": 1,
			"devMinor": 3
		},
		{
			"name": "lnk",
			"type": "symlink",
			"linkName": "bin/\\u2028x\xc3\xa9",
			"mode": 511
		},
		{
			"name": "hl",
			"type": "hardlink",
			"linkName": "bin/a\\u003cb\\u003e\\u0026c",
			"uid": 7,
			"gid": 8
		},
		{
			"name": "caf\xc3\xa9\\ufffd\\"\\\\\\t",
			"type": "fifo"
		},
		{
			"name": "m",
			"type": "reg",
			"size": 10,
			"offset": 500,
			"innerOffset": 7,
			"digest": "${DC}",
			"chunkDigest": "${DC}"
		}
	]
}`;

/** What JSON.parse should give back: zero values dropped (except name/type), strings decoded. */
function expectedParsed(e: TocEntry): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of GO_ORDER) {
    const v = (e as unknown as Record<string, unknown>)[k];
    if (k === "name" || k === "type") out[k] = Buffer.from(v as string, "latin1").toString("utf8");
    else if (v === undefined || v === 0 || v === "") continue;
    else if (k === "xattrs") {
      const m = v as Record<string, string>;
      if (Object.keys(m).length === 0) continue;
      // fromEntries: keys such as "__proto__" (fast-check generates them) stay own properties.
      out[k] = Object.fromEntries(
        Object.entries(m).map(([mk, mv]) => [Buffer.from(mk, "latin1").toString("utf8"), mv]),
      );
    } else if (typeof v === "string") out[k] = Buffer.from(v, "latin1").toString("utf8");
    else out[k] = v;
  }
  return out;
}

const str = fc.string({ unit: "binary", maxLength: 12 }).map(toByteString);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const entryArb: fc.Arbitrary<TocEntry> = fc
  .record(
    {
      name: str,
      type: fc.constantFrom("dir", "reg", "symlink", "hardlink", "char", "block", "fifo", "chunk"),
      size: maybe(fc.oneof(fc.constant(0), fc.maxSafeNat())),
      modtime: maybe(fc.oneof(fc.constant(""), fc.constant("2024-01-01T00:00:00Z"), str)),
      linkName: maybe(str),
      mode: maybe(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0o177777 }))),
      uid: maybe(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 31 - 1 }))),
      gid: maybe(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 31 - 1 }))),
      userName: maybe(str),
      groupName: maybe(str),
      offset: maybe(fc.maxSafeNat()),
      innerOffset: maybe(fc.nat()),
      devMajor: maybe(fc.nat()),
      devMinor: maybe(fc.nat()),
      xattrs: maybe(
        fc.dictionary(
          str,
          fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b).toString("base64")),
          { maxKeys: 4 },
        ),
      ),
      digest: maybe(fc.oneof(fc.constant(""), fc.constant(DA))),
      chunkOffset: maybe(fc.maxSafeNat()),
      chunkSize: maybe(fc.maxSafeNat()),
      chunkDigest: maybe(fc.oneof(fc.constant(""), fc.constant(DB))),
    },
    { requiredKeys: ["name", "type"] },
  )
  .map((e) => {
    // fc.record with optional keys may still set them to undefined: drop those.
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(e)) if (v !== undefined) o[k] = v;
    return o as unknown as TocEntry;
  });
const tocArb = fc
  .array(entryArb, { maxLength: 6 })
  .map((entries): Toc => ({ version: 1, entries }));

describe("serializeToc", () => {
  it("matches Go's MarshalIndent byte for byte for a fixed TOC", () => {
    const got = serializeToc(FIXED);
    expect(got.toString("latin1")).toBe(FIXED_GO);
    expect(sha256Digest(got)).toBe(sha256Digest(Buffer.from(FIXED_GO, "latin1")));
  });

  it("an empty entry list is [] and there is no trailing newline", () => {
    expect(serializeToc({ version: 1, entries: [] }).toString("latin1")).toBe(
      '{\n\t"version": 1,\n\t"entries": []\n}',
    );
  });

  it("JSON.parse gives the input back, minus omitted zero fields, keys in Go order", () => {
    fc.assert(
      fc.property(tocArb, (toc) => {
        const text = serializeToc(toc).toString("utf8");
        const parsed = JSON.parse(text) as { version: number; entries: Record<string, unknown>[] };
        expect(Object.keys(parsed)).toEqual(["version", "entries"]);
        expect(parsed.version).toBe(1);
        expect(parsed.entries.length).toBe(toc.entries.length);
        toc.entries.forEach((e, i) => {
          const want = expectedParsed(e);
          expect(parsed.entries[i]).toEqual(want);
          expect(Object.keys(parsed.entries[i])).toEqual(Object.keys(want));
          const x = parsed.entries[i].xattrs as Record<string, string> | undefined;
          if (x) {
            // Go sorts map keys by their UTF-8 bytes.
            const keys = Object.keys(x).map(toByteString);
            expect(keys).toEqual(
              [...keys].sort((a, b) =>
                Buffer.compare(Buffer.from(a, "latin1"), Buffer.from(b, "latin1")),
              ),
            );
          }
        });
      }),
      { numRuns: 500 },
    );
  });

  it("has Go's layout: JSON.stringify(…, null, '\\t') with Go's escapes, for well-formed strings", () => {
    fc.assert(
      fc.property(tocArb, (toc) => {
        const norm = { version: 1, entries: toc.entries.map(expectedParsed) };
        for (const e of norm.entries) {
          const x = e.xattrs as Record<string, string> | undefined;
          if (x) {
            const keys = Object.keys(x).sort((a, b) =>
              Buffer.compare(Buffer.from(a), Buffer.from(b)),
            );
            const sorted = Object.fromEntries(keys.map((k) => [k, x[k]]));
            // Integer-like keys would be reordered by JS objects; skip those cases.
            fc.pre(keys.every((k) => !/^(0|[1-9]\d*)$/.test(k)));
            e.xattrs = sorted;
          }
        }
        const want = JSON.stringify(norm, null, "\t").replace(
          /[<>&\u2028\u2029]/g,
          (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
        );
        expect(serializeToc(toc).toString("utf8")).toBe(want);
      }),
      { numRuns: 500 },
    );
  });

  it("parseToc(serializeToc(toc)) keeps every non-zero field", () => {
    fc.assert(
      fc.property(tocArb, (toc) => {
        for (const e of toc.entries) {
          fc.pre(!e.digest || e.digest.startsWith("sha256:"));
        }
        const back = parseToc(serializeToc(toc));
        expect(back.version).toBe(1);
        back.entries.forEach((e, i) => {
          expect(JSON.parse(JSON.stringify(e))).toEqual(expectedParsed(toc.entries[i]));
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe("parseToc", () => {
  const ok = (entries: unknown[]) => Buffer.from(JSON.stringify({ version: 1, entries }));
  it("accepts the fixed TOC and entries: null", () => {
    expect(parseToc(Buffer.from(FIXED_GO, "latin1")).entries.length).toBe(FIXED.entries.length);
    expect(parseToc(Buffer.from('{"version":1,"entries":null}')).entries).toEqual([]);
    expect(parseToc(Buffer.from('{"version":1}')).entries).toEqual([]);
  });

  it("ignores the legacy NumLink field", () => {
    const t = parseToc(ok([{ name: "a", type: "reg", size: 1, NumLink: 0, digest: DA }]));
    expect(t.entries[0].name).toBe("a");
  });

  it("rejects malformed TOCs with a FormatError", () => {
    const bad: [string, Buffer][] = [
      ["not json", Buffer.from("{not json")],
      ["empty", Buffer.alloc(0)],
      ["array", Buffer.from("[]")],
      ["null", Buffer.from("null")],
      ["version 2", Buffer.from('{"version":2,"entries":[]}')],
      ["no version", Buffer.from('{"entries":[]}')],
      ["entries object", Buffer.from('{"version":1,"entries":{}}')],
      ["entry not object", ok([1])],
      ["no name", ok([{ type: "reg" }])],
      ["bad type", ok([{ name: "a", type: "socket" }])],
      ["negative size", ok([{ name: "a", type: "reg", size: -1 }])],
      ["fractional offset", ok([{ name: "a", type: "reg", offset: 1.5 }])],
      ["string size", ok([{ name: "a", type: "reg", size: "1" }])],
      [
        "huge offset",
        Buffer.from(
          '{"version":1,"entries":[{"name":"a","type":"reg","offset":18446744073709551615}]}',
        ),
      ],
      ["bad digest", ok([{ name: "a", type: "reg", digest: "md5:00" }])],
      ["bad chunkDigest", ok([{ name: "a", type: "reg", chunkDigest: D("x") }])],
      ["numeric linkName", ok([{ name: "a", type: "symlink", linkName: 5 }])],
      ["xattr value", ok([{ name: "a", type: "reg", xattrs: { k: 1 } }])],
    ];
    for (const [why, b] of bad) expect(() => parseToc(b), why).toThrow(FormatError);
  });
});
