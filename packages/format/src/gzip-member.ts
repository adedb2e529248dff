import { constants, crc32, deflateRawSync } from "node:zlib";

/**
 * One gzip member framed as Go's compress/gzip writes it (the reference's framing):
 * header 1f 8b 08 00 00000000 XFL ff, a deflate stream ended by a sync flush and an empty
 * final stored block (01 00 00 ff ff), then CRC32 and ISIZE. A fresh compressor per member
 * makes each member depend only on its own bytes: output is the same at any thread count.
 */
export function gzipMember(data: Uint8Array, level: number): Buffer {
  const deflated = deflateRawSync(data, {
    level,
    finishFlush: constants.Z_SYNC_FLUSH,
    chunkSize: Math.max(64 * 1024, Math.min(data.length + 1024, 8 << 20)),
  });
  const out = Buffer.allocUnsafe(10 + deflated.length + 5 + 8);
  out.set(memberHeader(level), 0);
  out.set(deflated, 10);
  let p = 10 + deflated.length;
  out.set(FINAL_EMPTY_BLOCK, p);
  p += 5;
  out.writeUInt32LE(crc32(data) >>> 0, p);
  out.writeUInt32LE(data.length % 2 ** 32, p + 4);
  return out;
}

const FINAL_EMPTY_BLOCK = Uint8Array.of(0x01, 0x00, 0x00, 0xff, 0xff);

/** Go sets XFL=2 for best compression, 4 for best speed, 0 otherwise; OS=255 (unknown). */
export function memberHeader(level: number): Uint8Array {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Uint8Array.of(0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0xff);
}
