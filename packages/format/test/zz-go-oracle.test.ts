import { execFileSync } from "node:child_process";
import { emptyHeader, encodeHeader, type TarHeader, type TarType, toByteString } from "@seekable/format";
import fc from "fast-check";
import { expect, it } from "vitest";
const O7 = 8 ** 7;
// ---- arbitraries ----
const asciiSeg = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,30}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z][a-z0-9]{89,109}$/) },
);
const utf8Seg = fc
  .string({ unit: "binary", minLength: 1, maxLength: 12 })
  .filter((s) => !/[\x00/]/.test(s) && s !== "." && s !== "..")
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
  fc.string({ unit: "binary", maxLength: 10 }).filter((s) => !s.includes("\0")).map(toByteString),
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
    const h = emptyHeader(r.name, r.type);
    Object.assign(h, r);
    if (r.type === "5") h.name = `${r.name}/`;
    if (r.type !== "0") h.size = 0;
    if (r.type !== "1" && r.type !== "2") h.linkname = "";
    if (r.type !== "3" && r.type !== "4") {
      h.devmajor = 0;
      h.devminor = 0;
    }
    h.xattrs = new Map(r.xattrs);
    return h;
  });

const hx = (s: string) => Buffer.from(s, "latin1").toString("hex");
it("go oracle", () => {
  const hs = fc.sample(headerArb, { numRuns: 20000, seed: Number(process.env.SEED ?? 1) });
  for (const h of hs.slice(0, 5000)) { h.paxExtra = new Map(); if (h.keepSubsecond && Math.random() < 0.3) { h.paxExtra.set("atime", "123.5"); } }
  const lines = hs.map((h) => { const pax: Record<string,string> = {}; for (const [k,v] of h.xattrs) pax[hx(`SCHILY.xattr.${k}`)] = hx(v); for (const [k,v] of h.paxExtra) pax[hx(k)] = hx(v);
    return JSON.stringify({ Name: hx(h.name), Linkname: hx(h.linkname), Uname: hx(h.uname), Gname: hx(h.gname), Type: h.type, Mode: h.mode, Uid: h.uid, Gid: h.gid, Size: h.size, Sec: h.mtimeSec, Nsec: h.mtimeNsec, Devmajor: h.devmajor, Devminor: h.devminor, Pax: pax, KeepSub: h.keepSubsecond }); });
  const out = execFileSync("/tmp/gocheck/hdr/hdr", { input: lines.join("\n") + "\n", maxBuffer: 1 << 30 }).toString().trim().split("\n");
  let bad = 0; let errs = 0;
  hs.forEach((h, i) => {
    if (out[i].startsWith("ERR")) { errs++; if (errs < 4) console.log("GOERR", out[i], JSON.stringify({...h, xattrs: [...h.xattrs], paxExtra: [...h.paxExtra]})); return; }
    const ts = encodeHeader(h).toString("hex");
    if (ts !== out[i]) { bad++; if (bad < 6) { console.log("MISMATCH", JSON.stringify({...h, xattrs: [...h.xattrs], paxExtra:[...h.paxExtra]})); const a = Buffer.from(ts,"hex"), b = Buffer.from(out[i],"hex"); console.log("len", a.length, b.length); for (let j=0;j<Math.min(a.length,b.length);j++) if (a[j]!==b[j]) { console.log("first diff at", j, a.subarray(j, j+40).toString("latin1"), "|", b.subarray(j,j+40).toString("latin1")); break; } } }
  });
  console.log("total", hs.length, "mismatch", bad, "goerr", errs);
  expect(bad).toBe(0);
}, 120000);
