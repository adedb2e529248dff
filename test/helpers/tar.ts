// Small tar layers made by tests (tar-stream's pack), and deterministic test data.
import { createHash } from "node:crypto";
import tarStream from "tar-stream";

export type TarItem = {
  name: string;
  /** A body makes a regular file; no body and no type makes a directory. */
  body?: Buffer | string;
  type?: "file" | "directory" | "symlink" | "link" | "character-device" | "block-device" | "fifo";
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Default MTIME. */
  mtime?: Date;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string>;
};

export const MTIME = new Date(1_700_000_000_000);

export async function makeTar(items: TarItem[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c) => void chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on("end", () => r()));
  for (const it of items) {
    const type = it.type ?? (it.body !== undefined ? "file" : "directory");
    // One entry at a time: queued entries finish recursively inside tar-stream, and a long
    // list (a 6,000-link chain) would overflow the stack.
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        {
          name: it.name,
          type,
          linkname: it.linkname,
          mode: it.mode ?? (type === "directory" ? 0o755 : 0o644),
          uid: it.uid ?? 0,
          gid: it.gid ?? 0,
          uname: it.uname,
          gname: it.gname,
          devmajor: it.devmajor,
          devminor: it.devminor,
          mtime: it.mtime ?? MTIME,
          pax: it.xattrs
            ? Object.fromEntries(
                Object.entries(it.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v]),
              )
            : undefined,
        },
        it.body ?? "",
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export const sha = (b: Uint8Array): string =>
  `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Deterministic incompressible bytes (a sha256 chain). */
export function pseudoRandom(n: number, seed: number): Buffer {
  const parts: Buffer[] = [];
  let h = Buffer.from(String(seed));
  for (let len = 0; len < n; len += 32) {
    h = createHash("sha256").update(h).digest();
    parts.push(h);
  }
  return Buffer.concat(parts).subarray(0, n);
}

/** `items` as an eStargz blob, converted in this process (one thread, level 1: fast). */
export async function esgzBlob(
  items: TarItem[],
  opts: { chunkSize?: number } = {},
): Promise<Buffer> {
  const { convertLayer } = await import("@seekable/format");
  const { Readable } = await import("node:stream");
  const tar = await makeTar(items);
  const out: Buffer[] = [];
  await convertLayer(
    { open: () => Readable.from([tar]) },
    { write: async (b) => void out.push(Buffer.from(b)) },
    { threads: 1, level: 1, ...opts },
  );
  return Buffer.concat(out);
}
