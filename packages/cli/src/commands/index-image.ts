import { FormatError } from "@seekable/format";
import { DEFAULT_MIN_LAYER_SIZE, GZIP_INDEX_ARTIFACT_TYPE, indexImage } from "@seekable/image";
import { parsePlatform, parseReference, referrersTag } from "@seekable/registry";
import { CliError } from "../errors.js";
import { registryClient } from "../target.js";

export interface IndexFlags {
  spanSize: number;
  minLayerSize?: number;
  platform?: string;
  creds?: string;
  plainHttp?: boolean;
  json?: boolean;
}

/**
 * `seekable index docker://REF`: indexes the image's gzip layers and pushes the indexes as
 * an OCI artifact whose subject is the image manifest; the image is not touched.
 */
export async function indexCommand(ref: string, flags: IndexFlags): Promise<void> {
  if (!ref.startsWith("docker://"))
    throw new CliError(
      `${ref}: expected an image reference docker://HOST/NAME[:TAG|@DIGEST]`,
      true,
    );
  const reference = parseReference(ref.slice("docker://".length));
  const client = registryClient(flags);
  try {
    const epoch = process.env.SOURCE_DATE_EPOCH;
    const r = await indexImage(client, reference, {
      spanSize: flags.spanSize,
      minLayerSize: flags.minLayerSize ?? DEFAULT_MIN_LAYER_SIZE,
      platform: flags.platform ? parsePlatform(flags.platform) : undefined,
      created: epoch && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : undefined,
    }).catch((e: unknown) => {
      throw e instanceof FormatError ? new CliError(`${ref}: ${e.message}`) : e;
    });
    const tag = r.via === "tag" ? referrersTag(r.subject.digest) : undefined;
    if (flags.json) {
      process.stdout.write(
        `${JSON.stringify({
          digest: r.digest ?? null,
          artifactType: GZIP_INDEX_ARTIFACT_TYPE,
          subject: r.subject,
          via: r.via ?? null,
          ...(tag && { tag }),
          indexed: r.indexed.map((l) => ({
            layer: l.layer.digest,
            size: l.layer.size,
            index: l.index.digest,
            indexSize: l.index.size,
            checkpoints: l.checkpoints,
            uncompressedSize: l.uncompressedSize,
          })),
          skipped: r.skipped.map((s) => ({ layer: s.layer.digest, reason: s.reason })),
        })}\n`,
      );
      return;
    }
    for (const l of r.indexed)
      process.stdout.write(
        `indexed ${l.layer.digest} (${l.layer.size} bytes): index ${l.index.size} bytes, ${l.checkpoints} checkpoints\n`,
      );
    for (const s of r.skipped) process.stdout.write(`skipped ${s.layer.digest}: ${s.reason}\n`);
    if (!r.digest) process.stdout.write(`no layer to index in ${ref}: nothing pushed\n`);
    else
      process.stdout.write(
        `pushed gzip index ${r.digest} for ${r.subject.digest}, ${tag ? `listed in the ${tag} tag (no referrers API)` : "listed by the referrers API"}\n`,
      );
  } finally {
    await client.close();
  }
}
