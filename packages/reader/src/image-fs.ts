import {
  cleanEntryName,
  FormatError,
  isLandmark,
  type Node,
  NotFoundError,
} from "@seekable/format";
import type { LayerView } from "./layer-view.js";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** A node of the merged image and the layer that provides it. */
export interface MergedNode {
  node: Node;
  layer: LayerView;
  children?: Map<string, MergedNode>;
}

/**
 * Layers merged top-down as a container runtime does (OCI image layer rules): an upper
 * entry replaces a lower one, `.wh.NAME` hides NAME below, `.wh..wh..opq` hides everything
 * below in its directory; whiteout files themselves are not shown.
 *
 * Merged lazily, one directory at a time, when its children are first asked for: opening an
 * image costs nothing per entry, and a lookup merges only the directories on its path. Each
 * directory's merge replays the rules over just the entries that can affect it (its path,
 * whiteouts of that path, its children in every layer), so the result is the same as merging
 * every layer whole.
 */
export class ImageFS {
  readonly root: MergedNode;

  /** `layers` bottom first, as in the manifest. */
  constructor(readonly layers: LayerView[]) {
    const top = layers[layers.length - 1];
    this.root = new LazyMerged(this, "", top?.lookup("") as Node, top, true);
  }

  lookup(path: string): MergedNode | undefined {
    const clean = cleanEntryName(path);
    let m: MergedNode | undefined = this.root;
    if (clean === "") return m;
    let from = 0;
    while (m && from <= clean.length) {
      const slash = clean.indexOf("/", from);
      const end = slash < 0 ? clean.length : slash;
      m = m.children?.get(clean.slice(from, end));
      from = end + 1;
    }
    return m;
  }

  readdir(path: string): MergedNode[] {
    const m = this.lookup(path);
    if (!m) throw new NotFoundError(`${JSON.stringify(path)}: no such file or directory`);
    if (!m.children) throw new FormatError(`${JSON.stringify(path)}: not a directory`);
    return [...m.children.values()];
  }

  *walk(): Generator<MergedNode> {
    // Iterative: a deep tree must not exhaust the stack.
    const stack: Iterator<MergedNode>[] = [[this.root][Symbol.iterator]()];
    while (stack.length > 0) {
      const next = stack[stack.length - 1].next();
      if (next.done) {
        stack.pop();
        continue;
      }
      yield next.value;
      if (next.value.children) stack.push(next.value.children.values());
    }
  }

  async read(
    path: string,
    offset?: number,
    length?: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const m = this.need(path);
    return m.layer.read(m.node.path, offset, length, signal);
  }

  stream(path: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const m = this.need(path);
    return m.layer.stream(m.node.path, signal);
  }

  /** Prefetches files layer by layer: each layer gets one batched read. */
  async prefetch(paths: string[], signal?: AbortSignal): Promise<void> {
    const byLayer = new Map<LayerView, string[]>();
    for (const p of paths) {
      const m = this.lookup(p);
      if (!m || m.children) continue;
      const list = byLayer.get(m.layer) ?? [];
      list.push(m.node.path);
      byLayer.set(m.layer, list);
    }
    await Promise.all([...byLayer].map(([layer, list]) => layer.prefetch?.(list, signal)));
  }

  private need(path: string): MergedNode {
    const m = this.lookup(path);
    if (!m) throw new NotFoundError(`${JSON.stringify(path)}: no such file in the image`);
    return m;
  }

  /** The merged children of directory `dir` (a cleaned path). */
  mergeChildren(dir: string): Map<string, MergedNode> {
    const chain = [""];
    for (let i = dir.indexOf("/"); i >= 0; i = dir.indexOf("/", i + 1)) chain.push(dir.slice(0, i));
    if (dir !== "") chain.push(dir);
    const sim = new Replay(this.layers[this.layers.length - 1]);
    for (const layer of this.layers) {
      // Everything of this layer that can change `dir`'s children, in walk order.
      const nodes: Node[] = [];
      for (const p of chain) {
        const n = layer.lookup(p);
        if (n) nodes.push(n);
        if (p !== "") {
          const w = layer.lookup(join(parentOf(p), WHITEOUT + p.slice(p.lastIndexOf("/") + 1)));
          if (w) nodes.push(w);
        }
        if (p !== dir) {
          const o = layer.lookup(join(p, OPAQUE));
          if (o) nodes.push(o);
        }
      }
      const here = layer.lookup(dir);
      if (here?.children) for (const c of here.children.values()) nodes.push(c);
      sim.apply(layer, nodes);
    }
    const out = new Map<string, MergedNode>();
    const d = sim.byPath.get(dir);
    for (const [name, c] of d?.children ?? []) {
      out.set(
        name,
        new LazyMerged(this, join(dir, name), c.node, c.layer, c.children !== undefined),
      );
    }
    return out;
  }
}

/** A merged node whose children are merged on first use. */
class LazyMerged implements MergedNode {
  private kids: Map<string, MergedNode> | undefined;
  constructor(
    private readonly fs: ImageFS,
    private readonly path: string,
    public node: Node,
    public layer: LayerView,
    private readonly dir: boolean,
  ) {}

  get children(): Map<string, MergedNode> | undefined {
    if (!this.dir) return undefined;
    this.kids ??= this.fs.mergeChildren(this.path);
    return this.kids;
  }
}

interface SimNode {
  node: Node;
  layer: LayerView;
  children?: Map<string, SimNode>;
}

/** The whole-image merge rules, applied to a subset of the entries. */
class Replay {
  readonly root: SimNode;
  readonly byPath = new Map<string, SimNode>();

  constructor(top: LayerView) {
    this.root = { node: top?.lookup("") as Node, layer: top, children: new Map() };
    this.byPath.set("", this.root);
  }

  apply(layer: LayerView, nodes: Node[]): void {
    // Whiteouts act on the layers below, so they are applied before this layer's entries.
    for (const n of nodes) {
      const base = n.path.slice(n.path.lastIndexOf("/") + 1);
      const dir = n.path.slice(0, Math.max(0, n.path.lastIndexOf("/")));
      if (base === OPAQUE) {
        const d = this.byPath.get(dir);
        if (d?.children) for (const c of [...d.children.keys()]) this.remove(join(dir, c));
      } else if (base.startsWith(WHITEOUT)) {
        this.remove(join(dir, base.slice(WHITEOUT.length)));
      }
    }
    for (const n of nodes) {
      const base = n.path.slice(n.path.lastIndexOf("/") + 1);
      if (n.path === "") {
        this.root.node = n;
        this.root.layer = layer;
        continue;
      }
      // Whiteouts are instructions, landmarks are eStargz's own markers: neither is a file.
      if (base.startsWith(WHITEOUT) || isLandmark(n.path)) continue;
      const existing = this.byPath.get(n.path);
      if (existing && !(existing.children && n.type === "dir")) this.remove(n.path);
      const slash = n.path.lastIndexOf("/");
      const parent = this.byPath.get(slash < 0 ? "" : n.path.slice(0, slash));
      if (!parent?.children) continue; // parent replaced by a non-directory above: hidden
      const kept = this.byPath.get(n.path);
      if (kept) {
        kept.node = n;
        kept.layer = layer;
        continue;
      }
      const m: SimNode = { node: n, layer, children: n.type === "dir" ? new Map() : undefined };
      parent.children.set(base, m);
      this.byPath.set(n.path, m);
    }
  }

  private remove(path: string): void {
    const m = this.byPath.get(path);
    if (!m) return;
    for (const c of [...(m.children?.keys() ?? [])]) this.remove(join(path, c));
    this.byPath.delete(path);
    const slash = path.lastIndexOf("/");
    this.byPath.get(slash < 0 ? "" : path.slice(0, slash))?.children?.delete(path.slice(slash + 1));
  }
}

function parentOf(path: string): string {
  return path.slice(0, Math.max(0, path.lastIndexOf("/")));
}

function join(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}
