import { randomBytes } from "node:crypto";
import { TOC_DIGEST_ANNOTATION } from "@seekable/reader";
import {
  type Descriptor,
  fetchBlob,
  formatReference,
  getBlob,
  getImageManifest,
  type Platform,
  type Reference,
  type RegistryClient,
  withTarget,
} from "@seekable/registry";
import { chainIds } from "./chain-id.js";
import type { Containerd } from "./containerd.js";
import { writeContent } from "./content-write.js";
import { ALREADY_EXISTS, grpcCode, LAYER_TIMEOUT, NOT_FOUND } from "./grpc-code.js";
import { STARGZ_DIGEST, STARGZ_LAYERS, STARGZ_REFERENCE, TARGET_LABEL } from "./labels.js";
import type { Mount } from "./overlay.js";

/** containerd refuses a label whose key and value exceed this (labels.Validate). */
const MAX_LABEL = 4096;
/** Layer annotations containerd's unpacker passes to the snapshotter (the TOC digest among them). */
const SNAPSHOT_ANNOTATION_PREFIX = "containerd.io/snapshot/";

export interface PullOptions {
  socket: string;
  namespace: string;
  snapshotter: string;
  client: RegistryClient;
  platform?: Platform;
  log(line: string): void;
}

export interface PulledLayer {
  digest: string;
  chainId: string;
  /** lazy: committed by the snapshotter from the registry; unpacked: downloaded and applied; present: already there. */
  kind: "lazy" | "unpacked" | "present";
}

export interface PullResult {
  name: string;
  manifest: string;
  layers: PulledLayer[];
}

/** The `stargz.layers` label: the image's layer digests, cut to containerd's label limit. */
function layersLabel(layers: Descriptor[]): string {
  let out = "";
  for (const l of layers) {
    const next = out === "" ? l.digest : `${out},${l.digest}`;
    if (STARGZ_LAYERS.length + next.length > MAX_LABEL) break;
    out = next;
  }
  return out;
}

/**
 * What `ctr-remote image rpull` does, through containerd's own API: under a lease, the
 * manifest and config into the content store (with the GC labels that tie them to the
 * layers and the top snapshot), each layer Prepared with the labels that name it (the
 * snapshotter commits an eStargz layer itself and answers AlreadyExists; any other layer is
 * downloaded into the content store and applied by containerd's differ, then committed under
 * its chain ID), and the image record. `ctr images rm` and GC then free all of it.
 */
export async function pullImage(ref: Reference, o: PullOptions): Promise<PullResult> {
  // gRPC and containerd's API load while the manifest and config travel.
  const api = import("./containerd.js");
  api.catch(() => {}); // awaited below
  const { manifest } = await getImageManifest(o.client, ref, { platform: o.platform });
  performance.mark("pull: manifest");
  const m = manifest.json;
  const configDesc = m.config;
  if (!configDesc) throw new Error(`${formatReference(ref)}: the manifest has no config`);
  const repo = { registry: ref.registry, repository: ref.repository };
  const name = formatReference(ref);
  const pinned = formatReference(withTarget(ref, { digest: manifest.digest }));
  const ctd = new (await api).Containerd(o.socket, o.namespace);
  try {
    // The lease is made while the config travels.
    const expire = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, "Z");
    const leaseId = `seekable-pull-${randomBytes(6).toString("hex")}`;
    const leased = ctd.leases.call("Create", {
      id: leaseId,
      labels: { "containerd.io/gc.expire": expire },
    });
    leased.catch(() => {}); // awaited below
    try {
      const configBytes = await fetchBlob(o.client, repo, configDesc.digest, {
        size: configDesc.size,
        maxBytes: 8 << 20,
      });
      performance.mark("pull: config");
      const config = JSON.parse(Buffer.from(configBytes).toString("utf8")) as {
        rootfs?: { diff_ids?: string[] };
      };
      const layers = m.layers ?? [];
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== layers.length) {
        throw new Error(
          `${name}: ${layers.length} layers but ${diffIds.length} diff IDs in the config`,
        );
      }
      const chain = chainIds(diffIds);
      await leased;
      ctd.lease = leaseId;
      // Which layers containerd has already (asked at once, not one round trip per layer).
      const present = await Promise.all(chain.map((c) => hasSnapshot(ctd, o.snapshotter, c)));
      // The content store and the layers at once: the first layer's Prepare waits for the
      // snapshotter to fetch the image's TOCs, the content writes only for containerd.
      const written = (async () => {
        const configLabels: Record<string, string> = {};
        if (chain.length > 0)
          configLabels[`containerd.io/gc.ref.snapshot.${o.snapshotter}`] = chain[chain.length - 1];
        await writeContent(ctd.content, {
          digest: configDesc.digest,
          size: configDesc.size,
          labels: configLabels,
          data: [configBytes],
        });
        const manifestLabels: Record<string, string> = {
          "containerd.io/gc.ref.content.config": configDesc.digest,
        };
        layers.forEach((l, i) => {
          manifestLabels[`containerd.io/gc.ref.content.l.${i}`] = l.digest;
        });
        await writeContent(ctd.content, {
          digest: manifest.digest,
          size: manifest.size,
          labels: manifestLabels,
          data: [manifest.bytes],
        });
        performance.mark("pull: lease, manifest and config written");
      })();
      written.catch(() => {}); // awaited below
      const pulled: PulledLayer[] = [];
      for (let i = 0; i < layers.length; i++) {
        const kind = present[i]
          ? "present"
          : await unpackLayer(ctd, o, {
              layer: layers[i],
              diffId: diffIds[i],
              chainId: chain[i],
              parent: i > 0 ? chain[i - 1] : "",
              labels: {
                [STARGZ_REFERENCE]: pinned,
                [STARGZ_DIGEST]: layers[i].digest,
                [STARGZ_LAYERS]: layersLabel(layers),
              },
              fetch: () => getBlob(o.client, repo, layers[i].digest, { size: layers[i].size }),
            });
        pulled.push({ digest: layers[i].digest, chainId: chain[i], kind });
        performance.mark(`pull: layer ${i} ${kind}`);
      }
      await written;
      const image = {
        name,
        labels: {},
        target: {
          media_type: manifest.mediaType,
          digest: manifest.digest,
          size: manifest.size,
          annotations: {},
        },
      };
      try {
        await ctd.images.call("Create", { image });
      } catch (e) {
        if (grpcCode(e) !== ALREADY_EXISTS) throw e;
        await ctd.images.call("Update", { image });
      }
      return { name, manifest: manifest.digest, layers: pulled };
    } finally {
      ctd.lease = undefined;
      await leased
        .then(() => ctd.leases.call("Delete", { id: leaseId, sync: false }))
        .catch(() => {});
    }
  } finally {
    ctd.close();
  }
}

async function hasSnapshot(ctd: Containerd, snapshotter: string, key: string): Promise<boolean> {
  try {
    await ctd.snapshots.call("Stat", { snapshotter, key });
    return true;
  } catch (e) {
    if (grpcCode(e) === NOT_FOUND) return false;
    throw e;
  }
}

interface LayerJob {
  layer: Descriptor;
  diffId: string;
  chainId: string;
  parent: string;
  labels: Record<string, string>;
  fetch(): AsyncIterable<Uint8Array>;
}

async function unpackLayer(
  ctd: Containerd,
  o: PullOptions,
  job: LayerJob,
): Promise<PulledLayer["kind"]> {
  const { snapshots } = ctd;
  const sn = o.snapshotter;
  const labels: Record<string, string> = { [TARGET_LABEL]: job.chainId, ...job.labels };
  for (const [k, v] of Object.entries(job.layer.annotations ?? {})) {
    if (k.startsWith(SNAPSHOT_ANNOTATION_PREFIX)) labels[k] = v;
  }
  const key = `extract-${randomBytes(6).toString("hex")} ${job.chainId}`;
  let mounts: Mount[];
  try {
    ({ mounts } = await snapshots.call<{ mounts: Mount[] }>(
      "Prepare",
      { snapshotter: sn, key, parent: job.parent, labels },
      LAYER_TIMEOUT, // a lazy layer's TOC is fetched meanwhile
    ));
  } catch (e) {
    if (grpcCode(e) !== ALREADY_EXISTS) throw e;
    // The snapshotter committed it (or another pull did meanwhile): check it is there.
    await snapshots.call("Stat", { snapshotter: sn, key: job.chainId });
    return job.layer.annotations?.[TOC_DIGEST_ANNOTATION] ? "lazy" : "present";
  }
  try {
    o.log(`layer ${job.layer.digest}: not lazy, downloading ${job.layer.size} bytes to unpack`);
    await writeContent(ctd.content, {
      digest: job.layer.digest,
      size: job.layer.size,
      labels: { "containerd.io/uncompressed": job.diffId },
      data: job.fetch(),
    });
    const { applied } = await ctd.diff.call<{ applied: { digest: string } }>(
      "Apply",
      {
        diff: {
          media_type: job.layer.mediaType,
          digest: job.layer.digest,
          size: job.layer.size,
          annotations: {},
        },
        mounts,
      },
      LAYER_TIMEOUT,
    );
    if (applied.digest !== job.diffId) {
      throw new Error(
        `layer ${job.layer.digest}: unpacked to ${applied.digest}, the config says ${job.diffId}`,
      );
    }
    await snapshots.call("Commit", {
      snapshotter: sn,
      name: job.chainId,
      key,
      labels: { [TARGET_LABEL]: job.chainId },
    });
    return "unpacked";
  } catch (e) {
    await snapshots.call("Remove", { snapshotter: sn, key }).catch(() => {});
    throw e;
  }
}
