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
 */
export class ImageFS {
  readonly root: MergedNode;
  private readonly byPath = new Map<string, MergedNode>();

  /** `layers` bottom first, as in the manifest. */
  constructor(readonly layers: LayerView[]) {
    const top = layers[layers.length - 1];
    const rootNode = top?.lookup("") as Node;
    this.root = { node: rootNode, layer: top, children: new Map() };
    this.byPath.set("", this.root);
    for (const layer of layers) this.apply(layer);
  }

  lookup(path: string): MergedNode | undefined {
    return this.byPath.get(cleanEntryName(path));
  }

  readdir(path: string): MergedNode[] {
    const m = this.lookup(path);
    if (!m) throw new NotFoundError(`${JSON.stringify(path)}: no such file or directory`);
    if (!m.children) throw new FormatError(`${JSON.stringify(path)}: not a directory`);
    return [...m.children.values()];
  }

  *walk(): Generator<MergedNode> {
    const visit = function* (m: MergedNode): Generator<MergedNode> {
      yield m;
      for (const c of m.children?.values() ?? []) yield* visit(c);
    };
    yield* visit(this.root);
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

  private apply(layer: LayerView): void {
    const nodes = [...layer.walk()];
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
      const m: MergedNode = { node: n, layer, children: n.type === "dir" ? new Map() : undefined };
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

function join(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}
