import type { LayerReader, Node } from "@seekable/format";
import type { LayerView } from "@seekable/reader";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
/** "y", base64 (xattr values are base64 in TOC nodes). */
const YES = Buffer.from("y").toString("base64");
/** The opaque markers the reference store sets (layer.OverlayOpaqueAll). */
export const OPAQUE_XATTRS = ["trusted.overlay.opaque", "user.overlay.opaque"];

/**
 * One layer's files as overlayfs expects a lower directory (what the reference store shows in
 * `diff/`): `.wh.NAME` becomes a character device 0/0 named NAME (unless the layer also has
 * NAME itself), `.wh..wh..opq` is not shown and marks its directory with the opaque xattrs.
 * Regular files are the reader's own nodes, so their contents read as usual; directories
 * are copies whose `children` hold this view's nodes.
 */
export class OverlayLayerView implements LayerView {
  private readonly nodes: Node[] = [];
  private readonly byPath = new Map<string, Node>();

  constructor(readonly reader: LayerReader) {
    const all = [...reader.walk()];
    const real = new Set<string>();
    const opaque = new Set<string>();
    for (const n of all) {
      const slash = n.path.lastIndexOf("/");
      const base = n.path.slice(slash + 1);
      if (base === OPAQUE) opaque.add(n.path.slice(0, Math.max(0, slash)));
      else if (!base.startsWith(WHITEOUT)) real.add(n.path);
    }
    for (const n of all) {
      const slash = n.path.lastIndexOf("/");
      const dir = n.path.slice(0, Math.max(0, slash));
      const base = n.path.slice(slash + 1);
      let out = n;
      if (base === OPAQUE) continue;
      if (base.startsWith(WHITEOUT)) {
        const path = dir === "" ? base.slice(4) : `${dir}/${base.slice(4)}`;
        if (real.has(path) || this.byPath.has(path)) continue;
        out = {
          ...n,
          path,
          type: "char",
          mode: 0,
          size: 0,
          linkName: "",
          devMajor: 0,
          devMinor: 0,
          xattrs: {},
          digest: "",
          numLink: 1,
          chunks: [],
          children: undefined,
          target: undefined,
        };
      } else if (n.type === "dir") {
        // Directories are copies with children of this view (ImageFS lists them).
        const xattrs = { ...n.xattrs };
        if (opaque.has(n.path)) for (const x of OPAQUE_XATTRS) xattrs[x] = YES;
        out = { ...n, xattrs, children: new Map() };
      }
      this.nodes.push(out);
      this.byPath.set(out.path, out);
    }
    for (const n of this.nodes) {
      if (n.path === "") continue;
      const slash = n.path.lastIndexOf("/");
      this.byPath
        .get(n.path.slice(0, Math.max(0, slash)))
        ?.children?.set(n.path.slice(slash + 1), n);
    }
  }

  walk(): Iterable<Node> {
    return this.nodes;
  }

  lookup(path: string): Node | undefined {
    return this.byPath.get(path);
  }

  read(path: string, offset?: number, length?: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.reader.read(path, offset, length, signal);
  }

  stream(path: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    return this.reader.stream(path, signal);
  }

  prefetch(paths: string[], signal?: AbortSignal): Promise<void> {
    return this.reader.prefetch(paths, signal);
  }
}
