import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { FormatError, NotFoundError } from "@seekable/format";
import { BlobError } from "./source.js";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

const REF_NAME = "org.opencontainers.image.ref.name";
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** An OCI image layout directory (oci-layout, index.json, blobs/ALG/HEX). Read only. */
export class OciLayout {
  constructor(readonly dir: string) {}

  static async open(dir: string): Promise<OciLayout> {
    let marker: { imageLayoutVersion?: string };
    try {
      marker = JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"));
    } catch {
      throw new FormatError(`${dir}: not an OCI image layout (no readable oci-layout file)`);
    }
    if (!marker.imageLayoutVersion)
      throw new FormatError(`${dir}: oci-layout has no imageLayoutVersion`);
    return new OciLayout(dir);
  }

  async index(): Promise<{ manifests: Descriptor[] }> {
    const text = await readFile(join(this.dir, "index.json"), "utf8").catch(() => {
      throw new FormatError(`${this.dir}: no index.json`);
    });
    try {
      const idx = JSON.parse(text);
      return { ...idx, manifests: idx.manifests ?? [] };
    } catch {
      throw new FormatError(`${this.dir}/index.json is not valid JSON`);
    }
  }

  /** The descriptor tagged `tag` (annotation ref.name) in index.json. */
  async resolveTag(tag: string): Promise<Descriptor> {
    const idx = await this.index();
    const d = idx.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
    if (!d) throw new NotFoundError(`${this.dir}: no image tagged ${JSON.stringify(tag)}`);
    return d;
  }

  blobPath(digest: string): string {
    if (!DIGEST_RE.test(digest))
      throw new BlobError(digest, `unsupported digest ${JSON.stringify(digest)}`);
    return join(this.dir, "blobs", "sha256", digest.slice(7));
  }

  async blobSize(digest: string): Promise<number | undefined> {
    try {
      const st = await stat(this.blobPath(digest));
      return st.isFile() ? st.size : undefined;
    } catch {
      return undefined;
    }
  }
}
