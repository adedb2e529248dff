import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { FileRangeSource, FormatError, NotFoundError, type RangeSource } from "@seekable/format";
import { MediaType } from "@seekable/registry";
import {
  BlobError,
  checkBytes,
  type Descriptor,
  type ImageSource,
  type RawManifest,
  sha256,
  verifying,
} from "./source.js";
import { indexTar, type TarMember } from "./tar-index.js";

interface ArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

const DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar";

/**
 * A `docker save` tar (manifest.json, config, layer tars). The image is presented as a
 * Docker schema2 manifest made from manifest.json; an uncompressed layer's digest is its
 * DiffID (checked as it streams), a compressed one's is hashed once.
 */
export class DockerArchiveSource implements ImageSource {
  private constructor(
    readonly name: string,
    private readonly file: string,
    private readonly members: Map<string, TarMember>,
    private readonly blobs: Map<string, TarMember>,
    private readonly top: RawManifest,
  ) {}

  static async open(
    file: string,
    tag: string | undefined,
    name: string,
  ): Promise<DockerArchiveSource> {
    const members = await indexTar(file);
    const read = async (member: string): Promise<Buffer> => {
      const m = members.get(member);
      if (!m) throw new FormatError(`${file}: archive has no ${JSON.stringify(member)}`);
      const fh = await open(file, "r");
      try {
        const buf = Buffer.alloc(m.size);
        await fh.read(buf, 0, m.size, m.offset);
        return buf;
      } finally {
        await fh.close();
      }
    };
    let entries: ArchiveEntry[];
    try {
      entries = JSON.parse((await read("manifest.json")).toString("utf8"));
    } catch (e) {
      if (e instanceof FormatError)
        throw new FormatError(`${file}: not a docker-archive (no manifest.json)`);
      throw new FormatError(`${file}: manifest.json is not valid JSON`);
    }
    if (!Array.isArray(entries) || entries.length === 0)
      throw new FormatError(`${file}: manifest.json lists no image`);
    let entry = entries[0] as ArchiveEntry;
    if (tag !== undefined) {
      const found = entries.find((e) =>
        (e.RepoTags ?? []).some((t) => t === tag || t.endsWith(`:${tag}`) || t.endsWith(`/${tag}`)),
      );
      if (!found) throw new NotFoundError(`${file}: no image tagged ${JSON.stringify(tag)}`);
      entry = found;
    } else if (entries.length > 1) {
      throw new NotFoundError(
        `${file}: archive holds ${entries.length} images; name one (FILE:REF)`,
      );
    }
    const configBytes = await read(entry.Config);
    const config = JSON.parse(configBytes.toString("utf8"));
    const diffIDs: string[] = config?.rootfs?.diff_ids ?? [];
    const blobs = new Map<string, TarMember>();
    const configDigest = sha256(configBytes);
    blobs.set(configDigest, members.get(entry.Config) as TarMember);
    const layers: Descriptor[] = [];
    for (const [i, name] of entry.Layers.entries()) {
      const m = members.get(name.replace(/^(\.\/)+/, ""));
      if (!m) throw new FormatError(`${file}: archive has no layer ${JSON.stringify(name)}`);
      const head = Buffer.alloc(Math.min(2, m.size));
      const fh = await open(file, "r");
      try {
        await fh.read(head, 0, head.length, m.offset);
      } finally {
        await fh.close();
      }
      const gz = head[0] === 0x1f && head[1] === 0x8b;
      const digest = !gz && diffIDs[i] ? diffIDs[i] : await hashRange(file, m);
      blobs.set(digest, m);
      layers.push({
        mediaType: gz ? MediaType.DockerLayerGzip : DOCKER_LAYER_TAR,
        digest,
        size: m.size,
      });
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, size: configBytes.length, digest: configDigest },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const top = {
      mediaType: MediaType.DockerManifest,
      digest: sha256(bytes),
      size: bytes.length,
      bytes,
    };
    return new DockerArchiveSource(name, file, members, blobs, top);
  }

  async root(): Promise<RawManifest> {
    return this.top;
  }

  async manifest(desc: Descriptor): Promise<RawManifest> {
    throw new FormatError(`${this.file}: no manifest ${desc.digest}`);
  }

  private member(desc: Descriptor): TarMember {
    const m = this.blobs.get(desc.digest);
    if (!m) throw new BlobError(desc.digest, `${this.file}: no blob ${desc.digest}`);
    return m;
  }

  async blobBytes(desc: Descriptor): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    for await (const c of this.raw(desc)) chunks.push(c as Buffer);
    return checkBytes(Buffer.concat(chunks), desc);
  }

  private raw(desc: Descriptor): Readable {
    const m = this.member(desc);
    if (m.size === 0) return createReadStream(this.file, { start: 1, end: 0 });
    return createReadStream(this.file, {
      start: m.offset,
      end: m.offset + m.size - 1,
      highWaterMark: 1 << 20,
    });
  }

  openBlob(desc: Descriptor): Readable {
    return verifying(this.raw(desc), desc);
  }

  async rangeSource(desc: Descriptor): Promise<RangeSource> {
    const m = this.member(desc);
    const file = await FileRangeSource.open(this.file);
    return {
      size: m.size,
      read: (ranges) =>
        file.read(ranges.map((r) => ({ offset: r.offset + m.offset, length: r.length }))),
      close: () => file.close(),
    } as RangeSource;
  }

  async close(): Promise<void> {
    this.members.clear();
  }
}

async function hashRange(file: string, m: TarMember): Promise<string> {
  const h = createHash("sha256");
  if (m.size > 0) {
    for await (const c of createReadStream(file, { start: m.offset, end: m.offset + m.size - 1 }))
      h.update(c as Buffer);
  }
  return `sha256:${h.digest("hex")}`;
}
