import type { Node } from "@seekable/format";
import type { LayerView } from "@seekable/reader";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
/** "y", base64 (xattr values are base64 in TOC nodes). */
const YES = Buffer.from("y").toString("base64");
/** The opaque markers the reference store sets (layer.OverlayOpaqueAll). */
export const OPAQUE_XATTRS = ["trusted.overlay.opaque", "user.overlay.opaque"];

const join = (dir: string, name: string) => (dir === "" ? name : `${dir}/${name}`);

/**
 * One layer's files as overlayfs expects a lower directory (what the reference store shows in
 * `diff/`): `.wh.NAME` becomes a character device 0/0 named NAME (unless the layer also has
 * NAME itself), `.wh..wh..opq` is not shown and marks its directory with the opaque xattrs.
 * Built lazily, a path at a time, like the reader's own nodes. Regular files are the
 * reader's own nodes, so their contents read as usual; directories are copies whose
 * `children` hold this view's nodes.
 */
export class OverlayLayerView implements LayerView {
  private readonly nodes = new Map<string, Node | undefined>();

  constructor(readonly reader: LayerView) {}

  lookup(path: string): Node | undefined {
    if (this.nodes.has(path)) return this.nodes.get(path);
    const slash = path.lastIndexOf("/");
    const base = path.slice(slash + 1);
    let out: Node | undefined;
    if (!base.startsWith(WHITEOUT)) {
      const n = this.reader.lookup(path);
      if (n) out = n.type === "dir" ? this.directory(n) : n;
      else if (path !== "") {
        const w = this.reader.lookup(join(path.slice(0, Math.max(0, slash)), WHITEOUT + base));
        if (w) out = whiteout(w, path);
      }
    }
    this.nodes.set(path, out);
    return out;
  }

  private directory(n: Node): Node {
    const xattrs = { ...n.xattrs };
    if (n.children?.has(OPAQUE)) for (const x of OPAQUE_XATTRS) xattrs[x] = YES;
    let kids: Map<string, Node> | undefined;
    // Reader nodes keep some fields behind getters: those are set explicitly.
    const copy: Node = { ...n, xattrs, chunks: [], target: undefined, entry: n.entry };
    Object.defineProperty(copy, "children", {
      enumerable: true,
      get: () => {
        if (kids) return kids;
        kids = new Map();
        for (const name of n.children?.keys() ?? []) {
          if (name === OPAQUE) continue;
          const shown = name.startsWith(WHITEOUT) ? name.slice(WHITEOUT.length) : name;
          const c = this.lookup(join(n.path, shown));
          if (c) kids.set(shown, c);
        }
        return kids;
      },
    });
    return copy;
  }

  *walk(): Generator<Node> {
    const stack: Node[] = [];
    const root = this.lookup("");
    if (root) stack.push(root);
    while (stack.length > 0) {
      const n = stack.pop() as Node;
      yield n;
      if (n.children) stack.push(...[...n.children.values()].reverse());
    }
  }

  read(path: string, offset?: number, length?: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.reader.read(path, offset, length, signal);
  }

  stream(path: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    return this.reader.stream(path, signal);
  }

  prefetch(paths: string[], signal?: AbortSignal): Promise<void> {
    return this.reader.prefetch?.(paths, signal) ?? Promise.resolve();
  }
}

/** The overlayfs whiteout for `.wh.NAME` entry `w`: a character device 0/0 at `path`. */
function whiteout(w: Node, path: string): Node {
  return {
    ...w,
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
    entry: undefined,
  };
}
