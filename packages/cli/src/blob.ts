import { FileRangeSource, LayerReader } from "@seekable/format";
import { CliError } from "./errors.js";

export interface BlobOptions {
  tocDigest?: string;
}

/** Opens BLOB (for now: a local eStargz or stargz file) as a verified LayerReader. */
export async function openBlob(blob: string, opts: BlobOptions = {}): Promise<LayerReader> {
  if (/^(https?|docker):\/\//.test(blob)) {
    throw new CliError(`${blob}: remote blobs are not supported yet (local files only)`);
  }
  if (opts.tocDigest && !/^sha256:[0-9a-f]{64}$/.test(opts.tocDigest)) {
    throw new CliError(`--toc-digest ${opts.tocDigest}: not a sha256 digest`);
  }
  const src = await FileRangeSource.open(blob);
  try {
    return await LayerReader.open(src, { tocDigest: opts.tocDigest });
  } catch (e) {
    await src.close();
    throw e;
  }
}
