import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FormatError } from "../src/errors.js";
import { TOC_TAR_NAME } from "../src/landmark.js";
import { cleanEntryName } from "../src/tar-header.js";
import { TocIndex } from "../src/toc-index.js";

type Spec = { name: string; type: "dir" | "reg" | "symlink" };

/** The tree the index must build, by a plain model over cleaned names; "error" if refused. */
function model(entries: Spec[]): Map<string, string> | "error" {
  const types = new Map<string, string>([["", "dir"]]);
  const kids = new Map<string, number>();
  for (const e of entries) {
    const clean = cleanEntryName(e.name);
    if (clean === TOC_TAR_NAME) continue;
    const parts = clean === "" ? [] : clean.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      const t = types.get(dir);
      if (t === undefined) {
        const up = parts.slice(0, i - 1).join("/");
        if (types.get(up) !== "dir") return "error";
        types.set(dir, "dir");
        kids.set(up, (kids.get(up) ?? 0) + 1);
      } else if (t !== "dir") return "error";
    }
    const t = types.get(clean);
    if (t === undefined) {
      const up = parts.slice(0, -1).join("/");
      if (types.get(up) !== "dir") return "error";
      kids.set(up, (kids.get(up) ?? 0) + 1);
    } else if (t === "dir" && e.type !== "dir" && (kids.get(clean) ?? 0) > 0) return "error";
    types.set(clean, e.type);
  }
  return types;
}

function built(entries: Spec[]): Map<string, string> | "error" {
  const json = Buffer.from(JSON.stringify({ version: 1, entries }, null, "\t"));
  let index: TocIndex;
  try {
    index = TocIndex.build(json, 1 << 30);
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    return "error";
  }
  const out = new Map<string, string>();
  for (const path of index.nodes.paths()) {
    // Every node is found again by its path (the lookup hashes the path on its own).
    const node = index.nodes.get(path);
    if (node === undefined || node.path !== path) throw new Error(`lookup of ${path} failed`);
    out.set(path, node.type);
  }
  return out;
}

const part = fc.constantFrom("a", "b", "c", ".", "..", "", "é", "a b", "x\\y", "\u0001");
const name = fc
  .tuple(
    fc.constantFrom("", "./", "/", "//"),
    fc.array(part, { minLength: 0, maxLength: 4 }),
    fc.constantFrom("", "/", "//"),
  )
  .map(([lead, parts, trail]) => lead + parts.join("/") + trail);
const spec = fc.record({
  name,
  type: fc.constantFrom("dir", "reg", "symlink") as fc.Arbitrary<Spec["type"]>,
});

describe("TocIndex", () => {
  it("builds the tree of cleaned names that a plain model does (messy names, duplicates, conflicts)", () => {
    fc.assert(
      fc.property(fc.array(spec, { maxLength: 12 }), (entries) => {
        const want = model(entries);
        const got = built(entries);
        if (want === "error" || got === "error") expect(got).toEqual(want);
        else expect(Object.fromEntries(got)).toEqual(Object.fromEntries(want));
      }),
      { numRuns: 3000 },
    );
  });
});
