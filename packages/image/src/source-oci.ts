import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { FileRangeSource, NotFoundError, type RangeSource } from "@seekable/format";
import { OciLayout } from "./oci-layout.js";
import {
  checkBytes,
  type Descriptor,
  type ImageSource,
  type RawManifest,
  verifying,
} from "./source.js";

/** An image in an OCI layout directory, by tag (or the only one when no tag is given). */
export class OciSource implements ImageSource {
  private constructor(
    private readonly layout: OciLayout,
    private readonly tag: string | undefined,
    readonly name: string,
  ) {}

  static async open(dir: string, tag: string | undefined, name: string): Promise<OciSource> {
    return new OciSource(await OciLayout.open(dir), tag, name);
  }

  async root(): Promise<RawManifest> {
    let desc: Descriptor;
    if (this.tag !== undefined) {
      desc = (await this.layout.resolveTag(this.tag)) as Descriptor;
    } else {
      const { manifests } = await this.layout.index();
      if (manifests.length !== 1) {
        throw new NotFoundError(
          `${this.layout.dir}: no tag given and index.json lists ${manifests.length} images`,
        );
      }
      desc = manifests[0] as Descriptor;
    }
    return this.manifest(desc);
  }

  async manifest(desc: Descriptor): Promise<RawManifest> {
    const bytes = await this.blobBytes(desc);
    let mediaType = desc.mediaType;
    try {
      mediaType = JSON.parse(Buffer.from(bytes).toString("utf8")).mediaType ?? mediaType;
    } catch {
      // refused by the caller's parse
    }
    return { mediaType, digest: desc.digest, size: bytes.length, bytes };
  }

  async blobBytes(desc: Descriptor): Promise<Uint8Array> {
    return checkBytes(await readFile(this.layout.blobPath(desc.digest)), desc);
  }

  openBlob(desc: Descriptor): Readable {
    const path = this.layout.blobPath(desc.digest);
    return verifying(createReadStream(path, { highWaterMark: 1 << 20 }), desc);
  }

  rangeSource(desc: Descriptor): Promise<RangeSource> {
    return FileRangeSource.open(this.layout.blobPath(desc.digest));
  }

  async close(): Promise<void> {}
}
