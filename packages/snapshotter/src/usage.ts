import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

export interface Usage {
  size: number;
  inodes: number;
}

/**
 * Disk usage of a directory tree as containerd's fs.DiskUsage counts it: allocated blocks of
 * every entry, each inode once (hard links), without following symlinks or mounts.
 */
export async function diskUsage(dir: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const top = await lstat(dir, { bigint: true });
  const walk = async (path: string): Promise<void> => {
    const st = await lstat(path, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    size += Number(st.blocks) * 512;
    if (st.isDirectory() && st.dev === top.dev) {
      for (const name of await readdir(path)) await walk(join(path, name));
    }
  };
  await walk(dir);
  return { size, inodes: seen.size };
}
