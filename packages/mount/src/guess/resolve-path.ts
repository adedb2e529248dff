import type { ImageFS, MergedNode } from "@seekable/reader";
import { Budget, GUESS_LIMITS } from "./budget.js";

/**
 * `path` in the merged image with every symlink followed, as the kernel would inside a
 * chroot of it: absolute targets from the image's root, 40 links and PATH_MAX bytes at most.
 * Linear in the components walked (a symlink's target is pushed onto the components still
 * to walk, a `..` pops the walked ancestors), each one a step of `budget`: an image's
 * symlinks cannot make one resolution, or many, cost more than the budget allows.
 */
export function resolvePath(
  fs: ImageFS,
  path: string,
  budget: Budget = new Budget(),
): MergedNode | undefined {
  if (path.length > GUESS_LIMITS.pathBytes) return undefined;
  // Still to walk, the next one last.
  const todo = path.split("/").reverse();
  const ancestors: MergedNode[] = [];
  let m: MergedNode = fs.root;
  let hops = 0;
  while (todo.length > 0) {
    if (!budget.spend()) return undefined;
    const c = todo.pop() as string;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      m = ancestors.pop() ?? fs.root;
      continue;
    }
    const next: MergedNode | undefined = m.children?.get(c);
    if (!next) return undefined;
    if (next.node.type === "symlink") {
      const target = next.node.linkName;
      if (++hops > GUESS_LIMITS.hops || target.length > GUESS_LIMITS.pathBytes) return undefined;
      if (target.startsWith("/")) {
        ancestors.length = 0;
        m = fs.root;
      }
      const parts = target.split("/");
      for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]);
      continue;
    }
    ancestors.push(m);
    m = next;
  }
  return m;
}
