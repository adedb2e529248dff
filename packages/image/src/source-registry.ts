import type { Readable } from "node:stream";
import type { RangeSource } from "@seekable/format";
import {
  fetchBlob,
  getBlob,
  getManifest,
  type ManifestResult,
  type Reference,
  RegistryBlobSource,
  type RegistryClient,
  type Repository,
  withTarget,
} from "@seekable/registry";
import type { Descriptor, ImageSource, RawManifest } from "./source.js";

const raw = (m: ManifestResult): RawManifest => ({
  mediaType: m.mediaType,
  digest: m.digest,
  size: m.size,
  bytes: m.bytes,
});

/** An image in a registry; every blob is digest-checked by the registry client. */
export class RegistrySource implements ImageSource {
  readonly repository: Repository;
  constructor(
    private readonly client: RegistryClient,
    private readonly ref: Reference,
    readonly name: string,
  ) {
    this.repository = { registry: ref.registry, repository: ref.repository };
  }

  async root(): Promise<RawManifest> {
    return raw(await getManifest(this.client, this.ref));
  }

  async manifest(desc: Descriptor): Promise<RawManifest> {
    return raw(await getManifest(this.client, withTarget(this.ref, { digest: desc.digest })));
  }

  blobBytes(desc: Descriptor): Promise<Uint8Array> {
    return fetchBlob(this.client, this.repository, desc.digest, { size: desc.size });
  }

  openBlob(desc: Descriptor): Readable {
    return getBlob(this.client, this.repository, desc.digest, { size: desc.size });
  }

  async rangeSource(desc: Descriptor): Promise<RangeSource> {
    return new RegistryBlobSource(this.client, this.repository, desc.digest, desc.size);
  }

  async close(): Promise<void> {}
}
