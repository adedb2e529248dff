import { type ConvertOptions, convertLayer, FormatError, type LayerInput } from "@seekable/format";
import {
  formatPlatform,
  isImageManifestMediaType,
  isIndexMediaType,
  limiter,
  MediaType,
  type Platform,
  selectPlatform,
} from "@seekable/registry";
import { bytesInput, emptyLayerInput, isEmptyLayer, SMALL_LAYER } from "./empty-layer.js";
import { assignPrioritized, layerFiles } from "./layer-files.js";
import {
  type ConvertedLayer,
  convertedLayerDescriptor,
  isConvertibleLayer,
  isEstargzLayer,
  type Json,
  parseJson,
  rewriteConfig,
  rewriteIndex,
  rewriteManifest,
  TOC_DIGEST_ANNOTATION,
  UNCOMPRESSED_SIZE_ANNOTATION,
} from "./manifest-rewrite.js";
import type { ImageSink, LayerSink } from "./sink.js";
import {
  BlobError,
  type Descriptor,
  type ImageSource,
  type RawManifest,
  sha256,
} from "./source.js";

/** A layer's input error, named with the layer's digest; the error itself is `cause`. */
export class LayerError extends FormatError {
  override readonly name: string = "LayerError";
  constructor(
    readonly digest: string,
    cause: FormatError,
  ) {
    super(`layer ${digest}: ${cause.message}`, { cause }, cause.kind);
  }
}

export interface ConvertImageOptions {
  /** Convert only this platform of an index (the result is still an index). */
  platform?: Platform;
  /** Layers converted at once (default 2). */
  concurrency?: number;
  /** Convert layers that are already eStargz too. */
  force?: boolean;
  /** Image paths in access order; each goes to the topmost layer holding it. */
  prioritizedFiles?: string[];
  chunkSize?: number;
  level?: number;
  threads?: number;
  /** Human progress lines. */
  onProgress?: (line: string) => void;
}

export interface LayerRecord extends ConvertedLayer {
  /** false when the layer was already eStargz and kept. */
  converted: boolean;
}

export interface ConvertImageResult {
  /** Digest of the top manifest or index written. */
  manifest: string;
  mediaType: string;
  size: number;
  layers: LayerRecord[];
  /** For an index: the converted image manifests. */
  manifests?: { digest: string; platform?: string }[];
}

interface ManifestOut {
  desc: Descriptor;
  bytes: Uint8Array;
  changed: boolean;
  layers: LayerRecord[];
}

/**
 * Converts a whole image (an index: every platform, or the one asked for) from source to sink.
 * Layers stream source -> eStargz -> sink, `concurrency` at once; blobs go first, then image
 * manifests, then the index or the tagged manifest. Nothing is tagged unless everything worked.
 */
export async function convertImage(
  source: ImageSource,
  sink: ImageSink,
  options: ConvertImageOptions = {},
): Promise<ConvertImageResult> {
  const run = new Conversion(source, sink, options);
  try {
    return await run.run();
  } catch (e) {
    await sink.discard().catch(() => {});
    throw e;
  }
}

class Conversion {
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  private readonly layerJobs = new Map<string, Promise<LayerRecord>>();
  private failure: unknown;
  private readonly progress: (line: string) => void;

  constructor(
    private readonly source: ImageSource,
    private readonly sink: ImageSink,
    private readonly options: ConvertImageOptions,
  ) {
    this.limit = limiter(Math.max(1, options.concurrency ?? 2));
    this.progress = options.onProgress ?? (() => {});
  }

  async run(): Promise<ConvertImageResult> {
    const root = await this.source.root();
    if (isIndexMediaType(root.mediaType) || (!root.mediaType && isIndexJson(root))) {
      return this.convertIndex(root);
    }
    const out = await this.convertManifest(root);
    await this.sink.putRoot(out.desc, out.bytes);
    return this.result(out.desc, [out]);
  }

  private result(
    desc: Descriptor,
    outs: ManifestOut[],
    manifests?: ConvertImageResult["manifests"],
  ): ConvertImageResult {
    const layers = new Map<string, LayerRecord>();
    for (const o of outs)
      for (const l of o.layers) if (!layers.has(l.digest)) layers.set(l.digest, l);
    return {
      manifest: desc.digest,
      mediaType: desc.mediaType,
      size: desc.size,
      layers: [...layers.values()],
      ...(manifests && { manifests }),
    };
  }

  private async convertIndex(root: RawManifest): Promise<ConvertImageResult> {
    const index = parseJson(root.bytes, `index ${root.digest}`);
    const all = (index.manifests ?? []) as Descriptor[];
    let entries = all;
    if (this.options.platform) {
      const chosen = selectPlatform(all, this.options.platform);
      if (!chosen) {
        throw new FormatError(
          `no manifest for ${formatPlatform(this.options.platform)} in index ${root.digest}`,
        );
      }
      entries = [chosen];
    }
    const outs = await this.settleAll(
      entries.map(async (entry) => {
        if (isIndexMediaType(entry.mediaType))
          throw new FormatError(`nested index ${entry.digest} is not supported`);
        return this.convertManifest(await this.source.manifest(entry));
      }),
    );
    // Every blob is in place: image manifests, then the index.
    for (const out of outs) await this.sink.putManifest(out.desc, out.bytes);
    const changed =
      entries.length !== all.length ||
      outs.some((o) => o.changed) ||
      root.mediaType !== MediaType.OciIndex;
    const newEntries = entries.map((e, i) => {
      const o = (outs[i] as ManifestOut).desc;
      return { ...e, mediaType: o.mediaType, digest: o.digest, size: o.size };
    });
    const top = changed
      ? rewriteIndex(index, newEntries)
      : {
          desc: { mediaType: root.mediaType, digest: root.digest, size: root.size },
          bytes: root.bytes,
        };
    await this.sink.putRoot(top.desc, top.bytes);
    return this.result(
      top.desc,
      outs,
      newEntries.map((e) => ({
        digest: e.digest,
        ...(e.platform && { platform: formatPlatform(e.platform as Platform) }),
      })),
    );
  }

  /** Converts one image manifest's layers and writes its config; the manifest is returned. */
  private async convertManifest(raw: RawManifest): Promise<ManifestOut> {
    const manifest = parseJson(raw.bytes, `manifest ${raw.digest}`);
    const mediaType = (manifest.mediaType as string | undefined) ?? raw.mediaType;
    if (mediaType && !isImageManifestMediaType(mediaType) && manifest.config === undefined) {
      throw new FormatError(
        `manifest ${raw.digest} has unsupported type ${JSON.stringify(mediaType)}`,
      );
    }
    const configDesc = manifest.config as Descriptor | undefined;
    const layers = (manifest.layers ?? []) as Descriptor[];
    if (!configDesc || !Array.isArray(layers))
      throw new FormatError(`manifest ${raw.digest} has no config or layers`);
    const configBytes = await this.source.blobBytes(configDesc);
    const config = parseJson(configBytes, `config ${configDesc.digest}`);
    const diffIDs = ((config.rootfs as Json | undefined)?.diff_ids ?? []) as string[];
    const isImageConfig =
      configDesc.mediaType === MediaType.OciConfig ||
      configDesc.mediaType === MediaType.DockerConfig;
    const tarLayers = layers.filter(isConvertibleLayer);
    if (isImageConfig && diffIDs.length !== tarLayers.length) {
      throw new FormatError(
        `config ${configDesc.digest} lists ${diffIDs.length} diff_ids for ${tarLayers.length} layers`,
      );
    }
    const toConvert = (d: Descriptor) =>
      isConvertibleLayer(d) && (this.options.force || !isEstargzLayer(d));

    let prioritized: string[][] = layers.map(() => []);
    const paths = this.options.prioritizedFiles ?? [];
    if (paths.length > 0) {
      const files = await this.settleAll(
        layers.map((d) =>
          isConvertibleLayer(d)
            ? this.limit(() => this.guard(() => layerFiles(this.source, d), d))
            : Promise.resolve(new Set<string>()),
        ),
      );
      prioritized = assignPrioritized(paths, files);
    }

    let tarIndex = 0;
    const jobs = layers.map((d, i) => {
      const diffIndex = isConvertibleLayer(d) ? tarIndex++ : -1;
      if (toConvert(d)) return this.layerJob(d, prioritized[i] ?? [], i, layers.length);
      return this.limit(async () => {
        this.check();
        await this.guard(() => this.sink.copyBlob(d, this.source), d);
        return isEstargzLayer(d) ? this.keptRecord(d, diffIDs[diffIndex] ?? "") : undefined;
      });
    });
    const done = await this.settleAll(jobs);
    const records = done.filter((r): r is LayerRecord => r !== undefined);

    const converted = layers.some(toConvert);
    const newLayers = layers.map((d, i) => {
      const r = done[i];
      return r?.converted ? convertedLayerDescriptor(d, r) : d;
    });
    let newDiffIDs = diffIDs;
    if (converted && isImageConfig) {
      newDiffIDs = [];
      layers.forEach((d, i) => {
        if (isConvertibleLayer(d)) newDiffIDs.push((done[i] as LayerRecord).diffID);
      });
    }
    const newConfigBytes =
      converted && isImageConfig ? rewriteConfig(config, newDiffIDs) : configBytes;
    const newConfig: Descriptor = {
      mediaType: configDesc.mediaType,
      digest: newConfigBytes === configBytes ? configDesc.digest : sha256(newConfigBytes),
      size: newConfigBytes.length,
    };
    await this.sink.putBlob(newConfig, newConfigBytes);
    const changed = converted || mediaType !== MediaType.OciManifest;
    if (!changed) {
      return {
        desc: { mediaType: MediaType.OciManifest, digest: raw.digest, size: raw.size },
        bytes: raw.bytes,
        changed,
        layers: records,
      };
    }
    const out = rewriteManifest(manifest, newConfig, newLayers);
    return { ...out, changed, layers: records };
  }

  private keptRecord(d: Descriptor, diffID: string): LayerRecord {
    const r: LayerRecord = {
      digest: d.digest,
      size: d.size,
      diffID,
      tocDigest: d.annotations?.[TOC_DIGEST_ANNOTATION] ?? "",
      uncompressedSize: Number(d.annotations?.[UNCOMPRESSED_SIZE_ANNOTATION] ?? 0),
      converted: false,
    };
    return r;
  }

  /** One layer converted once per run, even when several platforms share it. */
  private layerJob(
    d: Descriptor,
    prioritized: string[],
    i: number,
    n: number,
  ): Promise<LayerRecord> {
    const key = `${d.digest}\n${prioritized.join("\n")}`;
    let job = this.layerJobs.get(key);
    if (!job) {
      job = this.limit(() => this.guard(() => this.convertOne(d, prioritized, i, n), d));
      this.layerJobs.set(key, job);
    }
    return job;
  }

  private async convertOne(
    d: Descriptor,
    prioritized: string[],
    i: number,
    n: number,
  ): Promise<LayerRecord> {
    this.check();
    this.progress(`converting layer ${i + 1}/${n} ${d.digest} (${d.size} bytes)`);
    let input: LayerInput = { open: () => this.source.openBlob(d) };
    if (d.size <= SMALL_LAYER) {
      const bytes = await this.source.blobBytes(d);
      input = isEmptyLayer(bytes) ? emptyLayerInput() : bytesInput(bytes);
    }
    const opts: ConvertOptions = {
      chunkSize: this.options.chunkSize,
      level: this.options.level,
      threads: this.options.threads,
      prioritizedFiles: prioritized,
      allowMissingPrioritized: true,
    };
    const out: LayerSink = await this.sink.layer();
    const guarded: LayerSink = {
      ...out,
      write: (b) => {
        this.check();
        return out.write(b);
      },
      reset: () => out.reset(),
    };
    let res: Awaited<ReturnType<typeof convertLayer>>;
    try {
      res = await convertLayer(input, guarded, opts);
      await out.commit({ digest: res.digest, size: res.size });
    } catch (e) {
      await out.abort().catch(() => {});
      throw e;
    }
    this.progress(`converted layer ${i + 1}/${n} -> ${res.digest} (${res.size} bytes)`);
    const record: LayerRecord = {
      digest: res.digest,
      size: res.size,
      diffID: res.diffID,
      tocDigest: res.tocDigest,
      uncompressedSize: res.uncompressedSize,
      converted: true,
    };
    return record;
  }

  /** Names the layer in format errors (a corrupt layer says which). */
  private async guard<T>(f: () => Promise<T>, d: Descriptor): Promise<T> {
    try {
      return await f();
    } catch (e) {
      // Already attributed: another layer's failure rethrown here, or the blob's own error.
      const named = e instanceof LayerError || (e instanceof BlobError && e.digest === d.digest);
      if (e instanceof FormatError && !named) {
        const err = new LayerError(d.digest, e);
        this.failure ??= err;
        throw err;
      }
      this.failure ??= e;
      throw e;
    }
  }

  /** Stops work that has not started (or is writing) once something failed. */
  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Like Promise.all, but waits for every task to settle so nothing is left half-written. */
  private async settleAll<T>(tasks: Promise<T>[]): Promise<T[]> {
    const settled = await Promise.allSettled(tasks);
    const failed = settled.find((s) => s.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) throw this.failure ?? failed.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  }
}

function isIndexJson(m: RawManifest): boolean {
  try {
    return Array.isArray(JSON.parse(Buffer.from(m.bytes).toString("utf8")).manifests);
  } catch {
    return false;
  }
}
