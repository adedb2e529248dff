import {
  headBlob,
  pushBlob,
  putManifest,
  type Reference,
  type RegistryClient,
  type Repository,
  StreamingUpload,
  withTarget,
} from "@seekable/registry";
import type { ImageSink, LayerSink } from "./sink.js";
import type { Descriptor, ImageSource } from "./source.js";

/**
 * Pushes to a registry: layers stream up as they are converted (POST, PATCH…, PUT), blobs
 * the registry has are skipped, blobs of the same registry are mounted across repositories.
 */
export class RegistrySink implements ImageSink {
  readonly repository: Repository;
  constructor(
    private readonly client: RegistryClient,
    private readonly ref: Reference,
    readonly name: string,
    private readonly chunkSize?: number,
  ) {
    this.repository = { registry: ref.registry, repository: ref.repository };
  }

  async layer(): Promise<LayerSink> {
    const up = await StreamingUpload.start(this.client, this.repository, {
      chunkSize: this.chunkSize,
    });
    return {
      write: (b) => up.write(b),
      reset: () => up.reset(),
      commit: async (blob) => {
        await up.finish(blob);
      },
      abort: () => up.abort(),
    };
  }

  async copyBlob(desc: Descriptor, source: ImageSource): Promise<void> {
    const from = source.repository;
    const mountFrom =
      from &&
      from.registry === this.repository.registry &&
      from.repository !== this.repository.repository
        ? from.repository
        : undefined;
    if (await headBlob(this.client, this.repository, desc.digest)) return;
    const data = source.openBlob(desc);
    try {
      await pushBlob(this.client, this.repository, desc, data, {
        mountFrom,
        skipExistsCheck: true,
      });
    } finally {
      data.destroy();
    }
  }

  async putBlob(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await pushBlob(this.client, this.repository, desc, bytes);
  }

  async putManifest(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await putManifest(
      this.client,
      withTarget(this.ref, { digest: desc.digest }),
      bytes,
      desc.mediaType,
    );
  }

  async putRoot(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await putManifest(this.client, this.ref, bytes, desc.mediaType);
  }

  async discard(): Promise<void> {}
  async close(): Promise<void> {}
}
