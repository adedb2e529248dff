// Gets the images a benchmark reads ready: the image as given (full pull) and an eStargz
// version (converted first when the image is not eStargz). docker:// images are pushed as
// another tag of the same repository; oci: layouts are served with LayoutServer, the
// converted image written to a temporary layout served next to it.
import { join } from "node:path";
import { FormatError } from "@seekable/format";
import {
  convertImage,
  type ImageSink,
  isEstargzLayer,
  LayoutServer,
  OciLayout,
  OciSink,
  parseImageRef,
  RegistrySink,
  RegistrySource,
} from "@seekable/image";
import {
  type ImageFS,
  MemoryChunkCache,
  type OpenedLayer,
  openImage,
  ReadStats,
} from "@seekable/reader";
import {
  type Credentials,
  formatReference,
  getImageManifest,
  isLoopbackHost,
  parsePlatform,
  type Reference,
  RegistryClient,
  registryHost,
} from "@seekable/registry";

export interface Workload {
  name: string;
  /** Regular files in access order. */
  paths: string[];
}

export interface PreparedImage {
  /** Where the shaping proxy forwards a request path. */
  upstream: (path: string) => string;
  /** The image as given (full pull). Registry part: the upstream's; see `viaProxy`. */
  original: Reference;
  /** The eStargz image read lazily. */
  lazy: Reference;
  /** Layer digests of the eStargz image, bottom first. */
  lazyLayers: string[];
  /** Whether the image had to be converted to eStargz first. */
  converted: boolean;
  /** Compressed layer bytes of each image. */
  sizes: { original: number; lazy: number };
  /** Workloads with only the regular files of the image kept (others in `dropped`). */
  checkWorkloads(workloads: Workload[]): Promise<CheckedWorkload[]>;
  close(): Promise<void>;
}

export type CheckedWorkload = Workload & {
  bytes: number;
  dropped: string[];
  /**
   * Bytes a lazy reader cannot do without: per eStargz layer serving a workload file, the
   * footer and TOC member, plus the gzip members of the workload files' chunks (whole
   * files: a program that maps a binary and touches part of it can need less).
   */
  lowerBound: number;
};

export interface PrepareOptions {
  credentials?: Credentials;
  plainHttp?: boolean;
  platform?: string;
  tmpDir: string;
  onNote?: (line: string) => void;
  /** Bench the image as it is, plain gzip layers included (read through their indexes). */
  asIs?: boolean;
}

const OCI_CONVERTED_REPO = "seekable-bench";

/** `ref` with the registry replaced by `host` (the shaping proxy). */
export function viaProxy(ref: Reference, host: string): Reference {
  return { ...ref, registry: host };
}

export async function prepareImage(image: string, opts: PrepareOptions): Promise<PreparedImage> {
  const note = opts.onNote ?? (() => {});
  const parsed = parseImageRef(image);
  const client = new RegistryClient({
    credentials: opts.credentials,
    plainHttp: opts.plainHttp ? true : undefined,
  });
  const closers: (() => Promise<void>)[] = [() => client.close()];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  };
  try {
    let original: Reference;
    let upstream: (path: string) => string;
    let tagFor: (suffix: string) => Reference;
    let sinkFor: (ref: Reference, name: string) => Promise<ImageSink>;
    if (parsed.kind === "docker") {
      original = parsed.ref;
      const scheme = opts.plainHttp || isLoopbackHost(original.registry) ? "http" : "https";
      const origin = `${scheme}://${registryHost(original.registry)}`;
      upstream = () => origin;
      const base = original.tag ?? (original.digest ? "digest" : "latest");
      tagFor = (suffix) => ({
        registry: original.registry,
        repository: original.repository,
        tag: `${base}-seekable-${suffix}`,
      });
      sinkFor = async (ref, name) => new RegistrySink(client, ref, name);
    } else if (parsed.kind === "oci") {
      const layout = await OciLayout.open(parsed.dir);
      const index = await layout.index();
      let target: { tag?: string; digest?: string };
      if (parsed.tag) target = { tag: parsed.tag };
      else if (index.manifests.length === 1) target = { digest: index.manifests[0].digest };
      else
        throw new FormatError(
          `${image}: the layout holds ${index.manifests.length} images: name one with oci:DIR:TAG`,
        );
      const server = new LayoutServer(layout);
      const addr = await server.listen(0, "127.0.0.1");
      closers.push(() => server.close());
      const outDir = join(opts.tmpDir, "oci-converted");
      let outServer: LayoutServer | undefined;
      let outAddr = "";
      closers.push(async () => outServer?.close());
      original = { registry: addr, repository: "image", ...target };
      upstream = (path) =>
        path.startsWith(`/v2/${OCI_CONVERTED_REPO}/`) ? `http://${outAddr}` : `http://${addr}`;
      tagFor = (suffix) => ({ registry: addr, repository: OCI_CONVERTED_REPO, tag: suffix });
      sinkFor = async (ref, name) => {
        const sink = await OciSink.open(outDir, ref.tag, name);
        return sink;
      };
      // The converted layout is served once it exists (after the first conversion).
      const startOut = async () => {
        if (outServer) return;
        outServer = new LayoutServer(await OciLayout.open(outDir));
        outAddr = await outServer.listen(0, "127.0.0.1");
      };
      const convert = async (suffix: string, prioritized?: string[]) => {
        const ref = tagFor(suffix);
        const sink = await sinkFor(ref, `oci:${outDir}:${suffix}`);
        try {
          await convertImage(new RegistrySource(client, original, image), sink, {
            platform: opts.platform ? parsePlatform(opts.platform) : undefined,
            force: prioritized !== undefined,
            prioritizedFiles: prioritized,
          });
        } finally {
          await sink.close().catch(() => {});
        }
        await startOut();
        return { ...ref, registry: outAddr };
      };
      return await finish(convert);
    } else {
      throw new FormatError(`${image}: bench takes docker://REF or oci:DIR[:TAG]`);
    }
    const convert = async (suffix: string, prioritized?: string[]) => {
      const ref = tagFor(suffix);
      const sink = await sinkFor(ref, `docker://${formatReference(ref)}`);
      try {
        await convertImage(new RegistrySource(client, original, image), sink, {
          platform: opts.platform ? parsePlatform(opts.platform) : undefined,
          force: prioritized !== undefined,
          prioritizedFiles: prioritized,
        });
      } finally {
        await sink.close().catch(() => {});
      }
      return ref;
    };
    return await finish(convert);

    async function finish(
      convert: (suffix: string, prioritized?: string[]) => Promise<Reference>,
    ): Promise<PreparedImage> {
      const platform = opts.platform ? parsePlatform(opts.platform) : undefined;
      const layersOf = async (ref: Reference) =>
        (await getImageManifest(client, ref, { platform })).manifest.json.layers ?? [];
      const size = async (ref: Reference) =>
        (await layersOf(ref)).reduce((a, d) => a + (d.size ?? 0), 0);
      const origLayers = await layersOf(original);
      const isEstargz = origLayers.length > 0 && origLayers.every((d) => isEstargzLayer(d));
      let lazy = original;
      if (!isEstargz && !opts.asIs) {
        note(`${image} is not eStargz: converting it first (seekable convert, default options)`);
        lazy = await convert("estargz");
      }
      return {
        upstream,
        original,
        lazy,
        lazyLayers: (await layersOf(lazy)).map((d) => d.digest),
        converted: lazy !== original,
        sizes: { original: await size(original), lazy: await size(lazy) },
        // Workload paths checked against the image: missing ones are an error, non-files dropped.
        checkWorkloads: (workloads) => checkWorkloads(client, lazy, workloads, opts.platform),
        close,
      };
    }
  } catch (e) {
    await close();
    throw e;
  }
}

async function checkWorkloads(
  client: RegistryClient,
  ref: Reference,
  workloads: Workload[],
  platform: string | undefined,
): Promise<CheckedWorkload[]> {
  const target = await openImage(
    { reference: ref, platform: platform },
    {
      client: () => client,
      stats: new ReadStats(),
      cache: new MemoryChunkCache(),
    },
  );
  try {
    const layerOf = new Map(target.layers.map((l) => [l.view, l]));
    return workloads.map((w) => {
      const paths: string[] = [];
      const dropped: string[] = [];
      let bytes = 0;
      /** Per layer touched: its tail (TOC member + footer) and its members (offset -> length). */
      const touched = new Map<OpenedLayer, Map<number, number>>();
      for (const given of w.paths) {
        const p = resolveSymlinks(target.fs, given);
        const m = p === undefined ? undefined : target.fs.lookup(p);
        if (!m || p === undefined)
          throw new FormatError(`workload ${w.name}: ${given} is not in the image`);
        const node = m.node.type === "hardlink" ? (m.node.target ?? m.node) : m.node;
        if (node.type !== "reg" || paths.includes(p)) {
          dropped.push(p);
          continue;
        }
        paths.push(p);
        bytes += node.size;
        const layer = layerOf.get(m.layer);
        if (layer?.reader) {
          const members = touched.get(layer) ?? new Map<number, number>();
          touched.set(layer, members);
          const file = layer.reader.resolve(node);
          for (const c of file.chunks) members.set(c.offset, c.nextOffset - c.offset);
        }
      }
      if (paths.length === 0)
        throw new FormatError(`workload ${w.name}: no regular file of the image in it`);
      let lowerBound = 0;
      for (const [layer, members] of touched) {
        const r = layer.reader as NonNullable<OpenedLayer["reader"]>;
        lowerBound += r.source.size - r.footer.tocOffset;
        for (const n of members.values()) lowerBound += n;
      }
      return { name: w.name, paths, bytes, dropped, lowerBound };
    });
  } finally {
    await target.close();
  }
}

/** `path` with symlinks resolved inside the merged image (as a chroot would), or undefined. */
export function resolveSymlinks(fs: ImageFS, path: string): string | undefined {
  const todo = path.split("/");
  const stack: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift() as string;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      stack.pop();
      continue;
    }
    const m = fs.lookup([...stack, part].join("/"));
    if (!m) return undefined;
    if (m.node.type === "symlink") {
      if (++hops > 40) return undefined;
      if (m.node.linkName.startsWith("/")) stack.length = 0;
      todo.unshift(...m.node.linkName.split("/"));
      continue;
    }
    stack.push(part);
  }
  return stack.join("/");
}
