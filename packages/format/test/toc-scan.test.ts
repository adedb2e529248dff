import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FormatError } from "../src/errors.js";
import { parseToc, type TocEntry } from "../src/toc.js";
import {
  decodeString,
  type EntryScratch,
  PLAIN_NAMES,
  scanToc,
  TYPE_NAMES,
} from "../src/toc-scan.js";

/** What the scanner saw of each entry, in parseToc's shape (absent = zero value). */
function scanned(bytes: Buffer): Record<string, unknown>[] | "error" {
  const out: Record<string, unknown>[] = [];
  const sink = {
    names: PLAIN_NAMES,
    entry(e: EntryScratch) {
      const s = (S: number, E: number, F: number) => (S >= 0 ? decodeString(bytes, S, E, F) : "");
      out.push({
        name: s(e.nameS, e.nameE, e.nameF),
        type: TYPE_NAMES[e.type],
        size: e.size,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        offset: e.offset,
        innerOffset: e.innerOffset,
        devMajor: e.devMajor,
        devMinor: e.devMinor,
        chunkOffset: e.chunkOffset,
        chunkSize: e.chunkSize,
        modtime: s(e.modtimeS, e.modtimeE, e.modtimeF),
        linkName: s(e.linkNameS, e.linkNameE, e.linkNameF),
        userName: s(e.userNameS, e.userNameE, e.userNameF),
        groupName: s(e.groupNameS, e.groupNameE, e.groupNameF),
        digest: s(e.digestS, e.digestE, e.digestF),
        chunkDigest: s(e.chunkDigestS, e.chunkDigestE, e.chunkDigestF),
        xattrs:
          e.xattrsS >= 0 ? JSON.parse(bytes.toString("utf8", e.xattrsS, e.xattrsE)) : undefined,
      });
    },
  };
  try {
    let last: typeof out = [];
    scanToc(
      bytes,
      () => {
        out.length = 0;
        last = out;
        return sink;
      },
      { maxEntries: 1e9 },
    );
    return last;
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    return "error";
  }
}

/** -0 reads as 0 (the scanner normalizes it). */
const z = (v: number | undefined): number => (v ?? 0) + 0;

function parsed(bytes: Buffer): Record<string, unknown>[] | "error" {
  let entries: TocEntry[];
  try {
    entries = parseToc(bytes).entries;
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    return "error";
  }
  return entries.map((e) => ({
    name: e.name,
    type: e.type,
    size: z(e.size),
    mode: z(e.mode),
    uid: z(e.uid),
    gid: z(e.gid),
    offset: z(e.offset),
    innerOffset: z(e.innerOffset),
    devMajor: z(e.devMajor),
    devMinor: z(e.devMinor),
    chunkOffset: z(e.chunkOffset),
    chunkSize: z(e.chunkSize),
    modtime: e.modtime ?? "",
    linkName: e.linkName ?? "",
    userName: e.userName ?? "",
    groupName: e.groupName ?? "",
    digest: e.digest ?? "",
    chunkDigest: e.chunkDigest ?? "",
    xattrs: e.xattrs ?? undefined,
  }));
}

const D = "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";

// JSON values, good and bad, for each key.
const anyJson = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v));
const str = fc
  .oneof(
    fc.constantFrom("a", "usr/bin/", "./x/../y", "/etc//passwd", "é/ü", "a\nb", "<&>", "\u2028"),
    fc.string({ unit: "binary", maxLength: 12 }),
  )
  .map((s) => JSON.stringify(s));
const escaped = fc
  .string({ maxLength: 6 })
  .map((s) => JSON.stringify(s).replace(/[a-z]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`));
const num = fc.oneof(
  fc.nat({ max: 1 << 20 }).map(String),
  fc.constantFrom("0", "-0", "1.0", "1e3", "1.5", "-1", "9007199254740993", "1E2", "0.0e0"),
);
const typeVal = fc.oneof(
  fc.constantFrom(...TYPE_NAMES.slice(1)).map((t) => JSON.stringify(t)),
  fc.constantFrom('"socket"', '"re\\u0067"', "5", "null"),
);
const digestVal = fc.constantFrom(
  `"${D}"`,
  '""',
  '"md5:00"',
  `"${D.toUpperCase()}"`,
  "null",
  "3",
  // Near misses of the one-pass digest check: one byte off, escaped, too long or short.
  `"${D.slice(0, -1)}g"`,
  `"${D.slice(0, -1)}\\u0062"`,
  `"${D.replace("c", "\\u0063")}"`,
  `"${D}0"`,
  `"${D.slice(0, -1)}"`,
  `"sha256;${D.slice(7)}"`,
  `"${D.slice(0, 40)}\t${D.slice(41)}"`,
  `"${D.slice(0, 40)}\\t${D.slice(41)}"`,
);
const xattrsVal = fc.oneof(
  fc
    .dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }))
    .map((d) => JSON.stringify(d)),
  fc.constantFrom("null", "[]", '{"k":1}', '"x"'),
);
const valueFor: Record<string, fc.Arbitrary<string>> = {
  name: fc.oneof(str, escaped),
  type: typeVal,
  modtime: str,
  linkName: fc.oneof(str, escaped),
  userName: str,
  groupName: str,
  digest: digestVal,
  chunkDigest: digestVal,
  xattrs: xattrsVal,
};
for (const k of [
  "size",
  "mode",
  "uid",
  "gid",
  "offset",
  "innerOffset",
  "devMajor",
  "devMinor",
  "chunkOffset",
  "chunkSize",
])
  valueFor[k] = num;

const member = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .constantFrom(...Object.keys(valueFor))
      .chain((k) => valueFor[k].map((v) => `"${k}": ${v}`)),
  },
  { weight: 1, arbitrary: fc.tuple(str, anyJson).map(([k, v]) => `${k}:${v}`) },
  // Any value at all under a known key: mostly the wrong type.
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...Object.keys(valueFor)), anyJson)
      .map(([k, v]) => `"${k}":${v}`),
  },
);
const entry = fc
  .tuple(
    valueFor.name,
    fc.constantFrom('"reg"', '"dir"', '"symlink"', '"chunk"'),
    fc.array(member, { maxLength: 8 }),
    fc.constantFrom("", " ", "\n\t\t", "\r\n"),
  )
  .map(
    ([n, t, rest, ws]) => `{${ws}${[`"name":${n}`, `"type":${t}`, ...rest].join(`,${ws}`)}${ws}}`,
  );
const toc = fc
  .tuple(fc.array(entry, { maxLength: 6 }), fc.constantFrom("1", "1.0", "2", '"1"'), fc.boolean())
  .map(([es, v, first]) => {
    const entries = `"entries": [${es.join(",\n")}]`;
    const version = `"version": ${v}`;
    return first ? `{${version}, ${entries}}` : `{ ${entries} , ${version} }`;
  });

describe("the TOC scanner accepts and reads exactly what parseToc does", () => {
  it("on generated TOCs (good and bad values, escapes, duplicates, unknown keys)", () => {
    fc.assert(
      fc.property(toc, (text) => {
        const b = Buffer.from(text, "utf8");
        expect(scanned(b)).toEqual(parsed(b));
      }),
      { numRuns: 3000 },
    );
  });

  it("on random corruptions of a valid TOC", () => {
    const good = Buffer.from(
      JSON.stringify(
        {
          version: 1,
          entries: [
            { name: "bin/", type: "dir", mode: 493, modtime: "2024-01-01T00:00:00Z" },
            { name: "bin/sh", type: "reg", size: 5, offset: 10, digest: D, chunkDigest: D },
            { name: "bin/x", type: "reg", size: 9, offset: 90, chunkSize: 4, chunkDigest: D },
            { name: "bin/x", type: "chunk", offset: 190, chunkOffset: 4, chunkDigest: D },
            { name: "l", type: "symlink", linkName: "bin/sh", xattrs: { "user.a": "eA==" } },
          ],
        },
        null,
        "\t",
      ),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(2)), {
          minLength: 1,
          maxLength: 3,
        }),
        (edits) => {
          let b = Buffer.from(good);
          for (const [at, byte, op] of edits) {
            const p = Math.min(at, b.length - 1);
            if (op === 0) b[p] = byte;
            else if (op === 1)
              b = Buffer.concat([b.subarray(0, p), Buffer.of(byte), b.subarray(p)]);
            else b = Buffer.concat([b.subarray(0, p), b.subarray(p + 1)]);
          }
          expect(scanned(b)).toEqual(parsed(b));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("on odd but valid documents", () => {
    for (const text of [
      '{"version":1}',
      '{"version":1,"entries":null}',
      ' \n{"entries":[],"version":1e0}\t',
      '{"version":1,"entries":[{"name":"a","type":"reg","size":1,"size":"x"}]}',
      '{"version":1,"entries":[{"name":"a","type":"reg","size":"x","size":1}]}',
      '{"version":1,"entries":[{"name":"a","type":"socket"}],"entries":[]}',
      '{"version":1,"entries":[],"entries":[{"name":"b","type":"dir"}]}',
      '{"version":1,"entries":[{"n\\u0061me":"a","type":"dir","x":[[[{"y":[]}]]]}]}',
      '{"version":1,"entries":[{"name":"a","type":"dir"}],"x":{"entries":5}}',
      "[1]",
      '"x"',
      '{"version":1,"entries":[]} x',
      '\ufeff{"version":1}',
      '{"version":1,"entries":[{"name":"a\\ud800","type":"dir"}]}',
    ]) {
      const b = Buffer.from(text, "utf8");
      expect(scanned(b), text).toEqual(parsed(b));
    }
  });
});
