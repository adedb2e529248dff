import type { ImageFS, MergedNode } from "@seekable/reader";

/**
 * `path` in the merged image with every symlink followed, as the kernel would inside a
 * chroot of it (absolute targets from the image's root, 40 links at most).
 */
export function resolvePath(fs: ImageFS, path: string): MergedNode | undefined {
  let parts = path.split("/");
  let done: string[] = [];
  let m: MergedNode | undefined = fs.root;
  let hops = 0;
  while (parts.length > 0) {
    const c = parts.shift() as string;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      done.pop();
      m = fs.lookup(done.join("/"));
      if (!m) return undefined;
      continue;
    }
    const next: MergedNode | undefined = m.children?.get(c);
    if (!next) return undefined;
    if (next.node.type === "symlink") {
      if (++hops > 40) return undefined;
      const target = next.node.linkName;
      if (target.startsWith("/")) {
        done = [];
        m = fs.root;
      }
      parts = [...target.split("/"), ...parts];
      continue;
    }
    done.push(c);
    m = next;
  }
  return m;
}
