import { NotEStargzError } from "./errors.js";

/** Size of the eStargz footer: an empty gzip member whose FEXTRA holds the TOC offset. */
export const FOOTER_SIZE = 51;
/** Size of the original (crfs) stargz footer. */
export const LEGACY_FOOTER_SIZE = 47;

const MAX_TOC_OFFSET = Number.MAX_SAFE_INTEGER;

/** The 51-byte eStargz footer, byte for byte as the reference writes it. */
export function encodeFooter(tocOffset: number): Uint8Array {
  if (!Number.isSafeInteger(tocOffset) || tocOffset < 0) throw new RangeError("bad TOC offset");
  const b = Buffer.alloc(FOOTER_SIZE);
  b.set([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff], 0);
  b.writeUInt16LE(26, 10); // XLEN
  b.write("SG", 12, "latin1");
  b.writeUInt16LE(22, 14); // subfield LEN
  b.write(`${tocOffset.toString(16).padStart(16, "0")}STARGZ`, 16, "latin1");
  b.set([0x01, 0x00, 0x00, 0xff, 0xff], 38); // final empty stored block
  return b; // CRC32 and ISIZE stay zero
}

export interface Footer {
  tocOffset: number;
  footerSize: number;
  legacy: boolean;
}

/**
 * Parses the last bytes of a blob: tries the 51-byte eStargz footer, then the 47-byte
 * legacy one, as the reference does. `tail` must end at the end of the blob.
 * @throws NotEStargzError when neither footer is there.
 */
export function parseFooter(tail: Uint8Array): Footer {
  if (tail.length >= FOOTER_SIZE) {
    const f = tail.subarray(tail.length - FOOTER_SIZE);
    const off = parseExtra(f, 26, true);
    if (off !== undefined) return { tocOffset: off, footerSize: FOOTER_SIZE, legacy: false };
  }
  if (tail.length >= LEGACY_FOOTER_SIZE) {
    const f = tail.subarray(tail.length - LEGACY_FOOTER_SIZE);
    const off = parseExtra(f, 22, false);
    if (off !== undefined) return { tocOffset: off, footerSize: LEGACY_FOOTER_SIZE, legacy: true };
  }
  throw new NotEStargzError("no eStargz or stargz footer (not an eStargz blob?)");
}

function parseExtra(f: Uint8Array, xlen: number, subfield: boolean): number | undefined {
  if (f[0] !== 0x1f || f[1] !== 0x8b || f[2] !== 0x08 || (f[3] & 0x04) === 0) return undefined;
  if (f[10] !== (xlen & 0xff) || f[11] !== xlen >> 8) return undefined;
  let p = 12;
  if (subfield) {
    if (f[12] !== 0x53 || f[13] !== 0x47 || f[14] !== 22 || f[15] !== 0) return undefined;
    p = 16;
  }
  const text = Buffer.from(f.subarray(p, p + 22)).toString("latin1");
  if (!text.endsWith("STARGZ")) return undefined;
  const hex = text.slice(0, 16);
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) return undefined;
  const off = Number.parseInt(hex, 16);
  if (off > MAX_TOC_OFFSET) return undefined;
  return off;
}
