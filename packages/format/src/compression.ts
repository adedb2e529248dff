import { type ChunkRef, inflateChunkAsync } from "./chunk.js";
import { SeekableError } from "./errors.js";
import { encodeFooter, FOOTER_SIZE, type Footer, parseFooter } from "./footer.js";
import { gzipMember } from "./gzip-member.js";

/**
 * How a blob's members, TOC and footer are compressed, writing side: the seam the
 * reference keeps as estargz.Compressor (gzip now; zstd:chunked fits here later). Every
 * method is a pure function of its arguments, so output stays the same at any thread count.
 */
export interface Compressor {
  /** Names the implementation; compression workers look it up by this name. */
  readonly name: CompressionName;
  /** One independently decompressible member holding `data` (file chunks, tar headers). */
  writeMember(data: Uint8Array, level: number): Uint8Array;
  /** The member holding the TOC's tar entry (`stargz.index.json`). */
  tocMember(tocTar: Uint8Array, level: number): Uint8Array;
  /** The footer ending the blob, pointing at the TOC member at `tocOffset`. */
  footer(tocOffset: number): Uint8Array;
}

/** Reading side of the same seam (estargz.Decompressor). */
export interface Decompressor {
  readonly name: CompressionName;
  /** Bytes a footer takes at most: a blob's tail read must hold at least this many. */
  readonly footerSize: number;
  /** The footer at the end of `tail` (which ends at the end of the blob). */
  parseFooter(tail: Uint8Array): Footer;
  /**
   * The chunk `ref` names, from the compressed member that starts at `compressed[0]`;
   * inflates no more than the chunk needs. `name` names the file in errors.
   */
  inflateChunk(compressed: Uint8Array, ref: ChunkRef, name?: string): Promise<Uint8Array>;
}

export type CompressionName = "gzip";

/** eStargz's gzip framing, byte for byte as the reference writes and reads it. */
export const gzipCompression: Compressor & Decompressor = {
  name: "gzip",
  writeMember: gzipMember,
  tocMember: gzipMember,
  footer: encodeFooter,
  footerSize: FOOTER_SIZE,
  parseFooter,
  inflateChunk: inflateChunkAsync,
};

const COMPRESSIONS: Record<CompressionName, Compressor & Decompressor> = {
  gzip: gzipCompression,
};

/** The implementation called `name` (how a compression worker finds its compressor). */
export function compressionByName(name: CompressionName): Compressor & Decompressor {
  const c = COMPRESSIONS[name];
  if (!c) throw new SeekableError(`unknown compression ${JSON.stringify(name)}`, "usage");
  return c;
}
