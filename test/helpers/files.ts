// Temp dirs and file digests for tests.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { WORK_DIR } from "./paths.js";

/** A fresh directory under .work/tmp; `remove` deletes it (set KEEP_TEST_FILES=1 to keep it). */
export async function makeTempDir(
  prefix: string,
): Promise<{ path: string; remove(): Promise<void> }> {
  const parent = join(WORK_DIR, "tmp");
  await mkdir(parent, { recursive: true });
  const path = await mkdtemp(join(parent, `${prefix}-`));
  return {
    path,
    remove: async () => {
      if (!process.env.KEEP_TEST_FILES) await rm(path, { recursive: true, force: true });
    },
  };
}

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), h);
  return `sha256:${h.digest("hex")}`;
}

/** sha256 and length of a (multi-member) gzip file's uncompressed bytes, streamed. */
export async function gunzipDigest(path: string): Promise<{ digest: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  await pipeline(
    createReadStream(path, { highWaterMark: 1 << 20 }),
    createGunzip({ chunkSize: 1 << 20 }),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        size += chunk.length;
        cb();
      },
    }),
  );
  return { digest: `sha256:${h.digest("hex")}`, size };
}
