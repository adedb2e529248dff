import { TOC_DIGEST_ANNOTATION } from "@seekable/reader";
import { parseReference, type Reference } from "@seekable/registry";

/** The name containerd's unpacker asks a remote snapshot to be committed under. */
export const TARGET_LABEL = "containerd.io/snapshot.ref";
/** Marks a snapshot this snapshotter serves lazily (as the reference snapshotter does). */
export const REMOTE_LABEL = "containerd.io/snapshot/remote";
export const REMOTE_LABEL_VALUE = "remote snapshot";

/** Added by `ctr-remote image rpull`, nerdctl and `seekable pull`. */
export const STARGZ_REFERENCE = "containerd.io/snapshot/remote/stargz.reference";
export const STARGZ_DIGEST = "containerd.io/snapshot/remote/stargz.digest";
export const STARGZ_LAYERS = "containerd.io/snapshot/remote/stargz.layers";
/** Added by containerd's CRI plugin with `disable_snapshot_annotations = false`. */
export const CRI_IMAGE_REF = "containerd.io/snapshot/cri.image-ref";
export const CRI_LAYER_DIGEST = "containerd.io/snapshot/cri.layer-digest";
export const CRI_IMAGE_LAYERS = "containerd.io/snapshot/cri.image-layers";
export const CRI_MANIFEST_DIGEST = "containerd.io/snapshot/cri.manifest-digest";

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A layer Prepare may serve lazily: which image, which layer, committed as `target`. */
export interface RemoteLayer {
  target: string;
  ref: Reference;
  /** The reference as the store's directory names it (base64 of this text). */
  refText: string;
  digest: string;
  tocDigest: string;
}

/** Why a Prepare with a target is an ordinary snapshot (said in the log), or the remote layer. */
export type RemoteLabels = { remote: RemoteLayer } | { local: string };

/**
 * The remote layer named by Prepare's labels: the stargz set (ctr-remote, nerdctl, seekable
 * pull) or the CRI set, and the TOC digest containerd copies from the layer's annotations.
 * Labels arrive from containerd's clients: a value that does not parse is a local snapshot.
 */
export function remoteLayer(labels: Record<string, string>): RemoteLabels | undefined {
  const target = labels[TARGET_LABEL];
  if (!target) return undefined;
  const refText = labels[STARGZ_REFERENCE] ?? labels[CRI_IMAGE_REF];
  const digest = labels[STARGZ_DIGEST] ?? labels[CRI_LAYER_DIGEST];
  if (!refText || !digest) return { local: "no image reference and layer digest labels" };
  if (!DIGEST.test(digest)) return { local: `layer digest label ${JSON.stringify(digest)}` };
  const tocDigest = labels[TOC_DIGEST_ANNOTATION];
  if (!tocDigest) return { local: `layer ${digest} is not eStargz (no TOC digest annotation)` };
  if (!DIGEST.test(tocDigest)) return { local: `TOC digest label ${JSON.stringify(tocDigest)}` };
  let ref: Reference;
  try {
    ref = parseReference(refText);
  } catch (e) {
    return { local: `image reference ${JSON.stringify(refText)}: ${(e as Error).message}` };
  }
  // Pinned to the manifest when CRI names it, so a tag moved meanwhile changes nothing.
  const manifest = labels[CRI_MANIFEST_DIGEST];
  const text = manifest && DIGEST.test(manifest) ? pinned(refText, manifest) : refText;
  return { remote: { target, ref, refText: text, digest, tocDigest } };
}

function pinned(refText: string, digest: string): string {
  const at = refText.indexOf("@");
  const base = at >= 0 ? refText.slice(0, at) : refText;
  // A tag is the part after the last ':' that has no '/' after it.
  const colon = base.lastIndexOf(":");
  const untagged = colon > base.lastIndexOf("/") ? base.slice(0, colon) : base;
  return `${untagged}@${digest}`;
}

/** The layer store's directory for a layer of an image: `<base64 ref>/<digest>`. */
export function storePath(refText: string, digest: string): string {
  return `${Buffer.from(refText, "utf8").toString("base64")}/${digest}`;
}
