import { SeekableError } from "@seekable/format";
import type { Descriptor } from "@seekable/registry";

/** The annotation the reference reads `diff-size` from. */
const UNCOMPRESSED_SIZE = "io.containers.estargz.uncompressed-size";
/** containers/storage's compression type for gzip (archive.Gzip), as the reference writes it. */
const GZIP = 2;

/** The layer's JSON description, as the reference store encodes it (Go encoding/json). */
export function layerInfo(
  layers: Descriptor[],
  diffIds: string[],
  digest: string,
  uncompressedSize?: number,
): string {
  if (layers.length !== diffIds.length) {
    throw new SeekableError(
      `len(manifest.Layers) != len(config.Rootfs): ${layers.length} != ${diffIds.length}`,
      "input",
    );
  }
  const i = layers.findIndex((l) => l.digest === digest);
  if (i < 0)
    throw new SeekableError(
      `layer ${JSON.stringify(digest)} not found in the manifest`,
      "not-found",
    );
  const l = layers[i];
  // A gzip layer read through its index: the size the index gives.
  const size =
    Number.parseInt(l.annotations?.[UNCOMPRESSED_SIZE] ?? "", 10) || (uncompressedSize ?? 0);
  // Go's omitempty drops zero values: the same fields, in the same order.
  const info: Record<string, string | number> = {};
  if (l.digest) info["compressed-diff-digest"] = l.digest;
  if (l.size) info["compressed-size"] = l.size;
  if (diffIds[i]) info["diff-digest"] = diffIds[i];
  if (Number.isSafeInteger(size) && size !== 0) info["diff-size"] = size;
  info.compression = GZIP;
  return `${JSON.stringify(info)}\n`;
}
