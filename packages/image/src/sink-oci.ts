import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { FormatError, SeekableError } from "@seekable/format";
import { MediaType } from "@seekable/registry";
import type { ImageSink, LayerSink } from "./sink.js";
import { BlobError, type Descriptor, type ImageSource } from "./source.js";

const REF_NAME = "org.opencontainers.image.ref.name";

/** The output layout itself is unusable (not a directory, a bad index.json): the OUT side's fault. */
export class SinkError extends FormatError {
  override readonly name: string = "SinkError";
}

/**
 * Writes an OCI layout: every blob goes to a temporary name and is renamed to its digest;
 * index.json is replaced (temporary file + rename) last. A directory this run created is
 * removed again when the conversion fails.
 */
export class OciSink implements ImageSink {
  private created = false;
  private constructor(
    private readonly dir: string,
    private readonly tag: string | undefined,
    readonly name: string,
  ) {}

  static async open(dir: string, tag: string | undefined, name: string): Promise<OciSink> {
    const sink = new OciSink(dir, tag, name);
    const exists = await stat(dir).then(
      (s) => s.isDirectory() || Promise.reject(new SinkError(`${dir}: not a directory`)),
      (e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? false : Promise.reject(e)),
    );
    if (!exists) {
      await mkdir(dir, { recursive: true });
      sink.created = true;
    }
    const marker = join(dir, "oci-layout");
    if (!(await stat(marker).catch(() => undefined))) {
      await writeFile(marker, '{"imageLayoutVersion":"1.0.0"}');
    }
    await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
    return sink;
  }

  private blobPath(digest: string): string {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest))
      throw new BlobError(digest, `unsupported digest ${digest}`);
    return join(this.dir, "blobs", "sha256", digest.slice(7));
  }

  private tmpPath(): string {
    return join(
      this.dir,
      "blobs",
      "sha256",
      `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`,
    );
  }

  private async has(desc: Descriptor): Promise<boolean> {
    const s = await stat(this.blobPath(desc.digest)).catch(() => undefined);
    return s?.isFile() === true && s.size === desc.size;
  }

  async layer(): Promise<LayerSink> {
    const tmp = this.tmpPath();
    const fh = await open(tmp, "wx");
    let pos = 0;
    let closed = false;
    const close = async () => {
      if (!closed) {
        closed = true;
        await fh.close();
      }
    };
    return {
      write: async (data) => {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await fh.write(data, done, data.length - done, pos);
          done += bytesWritten;
          pos += bytesWritten;
        }
      },
      reset: async () => {
        await fh.truncate(0);
        pos = 0;
      },
      commit: async (blob) => {
        if (pos !== blob.size) throw new FormatError(`wrote ${pos} bytes, expected ${blob.size}`);
        await fh.sync();
        // The file goes under its digest: it must be the bytes reported, re-read from disk.
        const h = createHash("sha256");
        await pipeline(createReadStream(tmp, { highWaterMark: 1 << 20 }), h);
        const onDisk = `sha256:${h.digest("hex")}`;
        if (onDisk !== blob.digest)
          throw new SeekableError(
            `${tmp}: the bytes written (${onDisk}) are not the layer converted (${blob.digest})`,
            "system",
          );
        await close();
        await rename(tmp, this.blobPath(blob.digest));
      },
      abort: async () => {
        await close().catch(() => {});
        await rm(tmp, { force: true });
      },
    };
  }

  async copyBlob(desc: Descriptor, source: ImageSource): Promise<void> {
    if (await this.has(desc)) return;
    const tmp = this.tmpPath();
    try {
      await pipeline(source.openBlob(desc), createWriteStream(tmp, { flags: "wx" }));
      await rename(tmp, this.blobPath(desc.digest));
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  async putBlob(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    if (await this.has(desc)) return;
    const tmp = this.tmpPath();
    try {
      await writeFile(tmp, bytes, { flag: "wx" });
      await rename(tmp, this.blobPath(desc.digest));
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  putManifest(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    return this.putBlob(desc, bytes);
  }

  async putRoot(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await this.putBlob(desc, bytes);
    const path = join(this.dir, "index.json");
    let index: { schemaVersion?: number; mediaType?: string; manifests?: Descriptor[] } = {};
    const text = await readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return undefined;
      throw e;
    });
    if (text !== undefined) {
      try {
        index = JSON.parse(text);
      } catch {
        throw new SinkError(`${path} is not valid JSON`);
      }
    }
    const tag = this.tag;
    const kept = (index.manifests ?? []).filter((m) =>
      tag !== undefined
        ? m.annotations?.[REF_NAME] !== tag
        : !(m.digest === desc.digest && m.annotations?.[REF_NAME] === undefined),
    );
    const entry: Descriptor = {
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      ...(tag !== undefined && { annotations: { [REF_NAME]: tag } }),
    };
    const out = {
      ...index,
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [...kept, entry],
    };
    const tmp = join(this.dir, `.index.json.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
    await writeFile(tmp, `${JSON.stringify(out)}\n`);
    await rename(tmp, path);
  }

  async discard(): Promise<void> {
    if (this.created) await rm(this.dir, { recursive: true, force: true });
  }

  async close(): Promise<void> {}
}
