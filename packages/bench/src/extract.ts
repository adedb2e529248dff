// What a runtime does after a full pull: layers applied in order into one root directory,
// with the OCI whiteout rules (`.wh.NAME` removes NAME below, `.wh..wh..opq` empties the
// directory below), as the overlay snapshotter sees them. Files are read back with symlinks
// resolved inside the root (absolute ones included), as a chroot would.
import { spawn } from "node:child_process";
import { lstat, mkdir, readdir, readFile, readlink, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { SeekableError } from "@seekable/format";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** Cleaned relative path components ("./a//b/" -> ["a","b"]); `..` is refused. */
function components(name: string): string[] {
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes(".."))
    throw new SeekableError(`${JSON.stringify(name)}: path leaves the layer`, "input");
  return parts;
}

/**
 * Resolves `parts` inside `root` as a chroot would (symlinks followed, `..` clamped at the
 * root); the last component is followed only when `followLast`. Returns the host path.
 */
export async function resolveInRoot(
  root: string,
  parts: string[],
  followLast: boolean,
): Promise<string> {
  const stack: string[] = [];
  const todo = [...parts];
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift() as string;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      stack.pop();
      continue;
    }
    const path = join(root, ...stack, part);
    const last = todo.length === 0;
    if (last && !followLast) {
      stack.push(part);
      break;
    }
    const st = await lstat(path).catch(() => undefined);
    if (st?.isSymbolicLink()) {
      if (++hops > 40)
        throw new SeekableError(`${parts.join("/")}: too many levels of symbolic links`, "input");
      const target = await readlink(path);
      if (target.startsWith("/")) stack.length = 0;
      todo.unshift(...target.split("/"));
      continue;
    }
    stack.push(part);
  }
  return join(root, ...stack);
}

/**
 * Applies one layer blob (.tar, .tar.gz, .tar.zst: GNU tar detects it) on top of `root`:
 * GNU tar extracts it into a staging directory next to the root (nothing it writes can
 * leave it), then the staging tree is merged in with the OCI rules: whiteouts first, an
 * upper entry replaces a lower one, directories merge (renames: no data is copied).
 */
export async function applyLayer(file: string, root: string): Promise<void> {
  if ((await readdir(root)).length === 0) {
    // The bottom layer: nothing to merge with (its whiteouts, if any, hide nothing and
    // are left as they are: workload paths never name them).
    await run("tar", ["-x", "-f", file, "-C", root, "--no-same-owner"]);
    return;
  }
  const staging = `${root}.layer`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging);
  try {
    await run("tar", ["-x", "-f", file, "-C", staging, "--no-same-owner"]);
    await merge(staging, root);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function merge(from: string, to: string): Promise<void> {
  const entries = await readdir(from, { withFileTypes: true });
  for (const e of entries) {
    if (e.name === OPAQUE) {
      for (const name of await readdir(to).catch(() => [] as string[]))
        await rm(join(to, name), { recursive: true, force: true });
    } else if (e.name.startsWith(WHITEOUT)) {
      await rm(join(to, e.name.slice(WHITEOUT.length)), { recursive: true, force: true });
    }
  }
  for (const e of entries) {
    if (e.name.startsWith(WHITEOUT)) continue;
    const src = join(from, e.name);
    const dest = join(to, e.name);
    const existing = await lstat(dest).catch(() => undefined);
    if (e.isDirectory() && existing?.isDirectory()) {
      await merge(src, dest);
      continue;
    }
    if (existing) await rm(dest, { recursive: true, force: true });
    await rename(src, dest);
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err = (err + d).slice(-4000);
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(
            new SeekableError(
              `${cmd} ${args.join(" ")} exited ${code}: ${err.trim().split("\n")[0]}`,
              "system",
            ),
          ),
    );
  });
}

/** Reads an image path from an extracted root (symlinks resolved inside the root). */
export async function readInRoot(root: string, path: string): Promise<Buffer> {
  return readFile(await resolveInRoot(root, components(path), true));
}
