import { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import type { LayerInput } from "@seekable/format";
import { NO_PREFETCH_LANDMARK } from "@seekable/format";

/** Blobs up to this size are read once into memory (empty layers, small layers). */
export const SMALL_LAYER = 64 * 1024;

/** An empty layer: no bytes, or a tar (maybe gzipped) of nothing but zero blocks. */
export function isEmptyLayer(bytes: Uint8Array): boolean {
  let tar: Uint8Array = bytes;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      tar = gunzipSync(bytes, { maxOutputLength: 1 << 20 });
    } catch {
      return false; // the converter reports what is wrong with it
    }
  }
  return tar.every((b) => b === 0);
}

/**
 * A tar the converter turns into the eStargz of an empty layer: its one entry is a landmark,
 * which the converter drops (the format's sniffer refuses a tar of zero blocks alone).
 */
export function emptyLayerInput(): LayerInput {
  const header = Buffer.alloc(512);
  header.write(NO_PREFETCH_LANDMARK, 0, "latin1");
  header.write("0000644\0", 100, "latin1");
  header.write("0000000\0", 108, "latin1");
  header.write("0000000\0", 116, "latin1");
  header.write("00000000000\0", 124, "latin1");
  header.write("00000000000\0", 136, "latin1");
  header.write("0", 156, "latin1");
  header.write("ustar\0", 257, "latin1");
  header.write("00", 263, "latin1");
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  const tar = Buffer.concat([header, Buffer.alloc(1024)]);
  return { open: () => Readable.from([tar]) };
}

export function bytesInput(bytes: Uint8Array): LayerInput {
  return { open: () => Readable.from([Buffer.from(bytes)]) };
}
