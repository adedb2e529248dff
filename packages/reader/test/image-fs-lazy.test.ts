// The lazy, per-directory merge of ImageFS against the whole-image merge it replaced (kept
// here as the oracle), on random layers with whiteouts, opaque markers, files replacing
// directories and the reverse, implicit parents and landmarks.
import { cleanEntryName, isLandmark, type Node, newNode } from "@seekable/format";
import { ImageFS, type LayerView } from "@seekable/reader";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** A layer of nodes, with implicit parent directories, as LayerReader builds it. */
function layerOf(entries: { path: string; type: "dir" | "reg" }[], tag: number): LayerView {
  const nodes = new Map<string, Node>();
  const root = newNode("", "dir");
  nodes.set("", root);
  const ensure = (path: string, type: Node["type"]): Node | undefined => {
    const have = nodes.get(path);
    if (have) return have;
    const slash = path.lastIndexOf("/");
    const parent = ensure(slash < 0 ? "" : path.slice(0, slash), "dir");
    if (!parent?.children) return undefined; // under a file: skipped, as a TOC would be refused
    const n = newNode(path, type);
    n.size = tag;
    parent.children.set(path.slice(slash + 1), n);
    nodes.set(path, n);
    return n;
  };
  for (const e of entries) ensure(e.path, e.type);
  return {
    walk: () => nodes.values(),
    lookup: (p: string) => nodes.get(cleanEntryName(p)),
    read: async () => new Uint8Array(0),
    stream: async function* () {},
  };
}

/** The merge as it was: every layer applied whole, top-down. */
function eager(layers: LayerView[]): Map<string, { layer: number; node: Node; dir: boolean }> {
  interface M {
    node: Node;
    layer: LayerView;
    children?: Map<string, M>;
  }
  const top = layers[layers.length - 1];
  const root: M = { node: top.lookup("") as Node, layer: top, children: new Map() };
  const byPath = new Map<string, M>([["", root]]);
  const join = (d: string, n: string) => (d === "" ? n : `${d}/${n}`);
  const remove = (path: string): void => {
    const m = byPath.get(path);
    if (!m) return;
    for (const c of [...(m.children?.keys() ?? [])]) remove(join(path, c));
    byPath.delete(path);
    const slash = path.lastIndexOf("/");
    byPath.get(slash < 0 ? "" : path.slice(0, slash))?.children?.delete(path.slice(slash + 1));
  };
  for (const layer of layers) {
    const nodes = [...layer.walk()];
    for (const n of nodes) {
      const base = n.path.slice(n.path.lastIndexOf("/") + 1);
      const dir = n.path.slice(0, Math.max(0, n.path.lastIndexOf("/")));
      if (base === OPAQUE) {
        const d = byPath.get(dir);
        if (d?.children) for (const c of [...d.children.keys()]) remove(join(dir, c));
      } else if (base.startsWith(WHITEOUT)) remove(join(dir, base.slice(WHITEOUT.length)));
    }
    for (const n of nodes) {
      const base = n.path.slice(n.path.lastIndexOf("/") + 1);
      if (n.path === "") {
        root.node = n;
        root.layer = layer;
        continue;
      }
      if (base.startsWith(WHITEOUT) || isLandmark(n.path)) continue;
      const existing = byPath.get(n.path);
      if (existing && !(existing.children && n.type === "dir")) remove(n.path);
      const slash = n.path.lastIndexOf("/");
      const parent = byPath.get(slash < 0 ? "" : n.path.slice(0, slash));
      if (!parent?.children) continue;
      const kept = byPath.get(n.path);
      if (kept) {
        kept.node = n;
        kept.layer = layer;
        continue;
      }
      const m: M = { node: n, layer, children: n.type === "dir" ? new Map() : undefined };
      parent.children.set(base, m);
      byPath.set(n.path, m);
    }
  }
  // Flatten in walk order (children in insertion order).
  const out = new Map<string, { layer: number; node: Node; dir: boolean }>();
  const visit = (path: string, m: M) => {
    out.set(path, { layer: layers.indexOf(m.layer), node: m.node, dir: !!m.children });
    for (const [name, c] of m.children ?? []) visit(join(path, name), c);
  };
  visit("", root);
  return out;
}

function lazy(fs: ImageFS, layers: LayerView[]) {
  const out = new Map<string, { layer: number; node: Node; dir: boolean }>();
  for (const m of fs.walk()) {
    const path = m === fs.root ? "" : m.node.path;
    out.set(path, { layer: layers.indexOf(m.layer), node: m.node, dir: !!m.children });
  }
  return out;
}

const names = ["a", "b", "c", ".wh.a", ".wh.b", ".wh.c", OPAQUE, ".prefetch.landmark"];
const pathArb = fc
  .array(fc.constantFrom(...names), { minLength: 1, maxLength: 3 })
  .map((parts) => parts.join("/"));
const layerArb = fc.array(
  fc.record({ path: pathArb, type: fc.constantFrom("dir" as const, "reg" as const) }),
  { maxLength: 12 },
);

describe("ImageFS merges lazily with the same result as merging whole layers", () => {
  it("on random layers", () => {
    fc.assert(
      fc.property(fc.array(layerArb, { minLength: 1, maxLength: 4 }), fc.nat(), (ls, seed) => {
        const layers = ls.map((entries, i) => layerOf(entries, i));
        const want = eager(layers);
        const fs = new ImageFS(layers);
        // Lookups first (in an order that depends on the seed), then a full walk.
        const paths = [...want.keys()];
        for (let i = 0; i < paths.length; i++) {
          const p = paths[(i * 7 + seed) % paths.length];
          const m = fs.lookup(p);
          expect(m?.node, p).toBe(want.get(p)?.node);
          expect(m && layers.indexOf(m.layer)).toBe(want.get(p)?.layer);
        }
        const got = lazy(fs, layers);
        expect([...got.entries()]).toEqual([...want.entries()]);
        for (const p of ["a/b/c", "c/a", ".wh.a", "b/.wh..wh..opq"])
          if (!want.has(p)) expect(fs.lookup(p), p).toBeUndefined();
      }),
      { numRuns: 3000 },
    );
  });
});
