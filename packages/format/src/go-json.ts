/**
 * JSON string quoting exactly as Go's encoding/json does it, because the TOC digest is taken
 * over the serialized bytes and the reference serializes with Go.
 *
 * Input is a "byte string": one char per byte (latin1), as tar names are raw bytes.
 * Valid UTF-8 sequences are copied raw; each invalid byte becomes \ufffd (Go replaces
 * invalid bytes one at a time); <, >, & and U+2028/U+2029 are escaped (Go's HTML-safe mode).
 * Output is again a byte string.
 */
import type { ByteString } from "./byte-string.js";

const HEX = "0123456789abcdef";

export function goQuote(bytes: ByteString): ByteString {
  let out = '"';
  let start = 0;
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes.charCodeAt(i);
    if (b < 0x80) {
      if (b >= 0x20 && b !== 0x22 && b !== 0x5c && b !== 0x3c && b !== 0x3e && b !== 0x26) {
        i++;
        continue;
      }
      out += bytes.slice(start, i);
      switch (b) {
        case 0x22:
          out += '\\"';
          break;
        case 0x5c:
          out += "\\\\";
          break;
        case 0x0a:
          out += "\\n";
          break;
        case 0x0d:
          out += "\\r";
          break;
        case 0x09:
          out += "\\t";
          break;
        case 0x08:
          out += "\\b";
          break;
        case 0x0c:
          out += "\\f";
          break;
        default:
          out += `\\u00${HEX[b >> 4]}${HEX[b & 0xf]}`;
      }
      i++;
      start = i;
      continue;
    }
    const size = utf8SeqLength(bytes, i);
    if (size === 0) {
      out += `${bytes.slice(start, i)}\\ufffd`;
      i++;
      start = i;
      continue;
    }
    // U+2028 and U+2029 are E2 80 A8 / E2 80 A9.
    if (size === 3 && b === 0xe2 && bytes.charCodeAt(i + 1) === 0x80) {
      const b2 = bytes.charCodeAt(i + 2);
      if (b2 === 0xa8 || b2 === 0xa9) {
        out += `${bytes.slice(start, i)}\\u202${HEX[b2 & 0xf]}`;
        i += 3;
        start = i;
        continue;
      }
    }
    i += size;
  }
  return `${out}${bytes.slice(start)}"` as ByteString;
}

/** Length of the valid UTF-8 sequence at i (Go's utf8.DecodeRune rules), or 0 if invalid. */
function utf8SeqLength(s: string, i: number): number {
  const b0 = s.charCodeAt(i);
  const cont = (j: number, lo = 0x80, hi = 0xbf): boolean => {
    if (j >= s.length) return false;
    const c = s.charCodeAt(j);
    return c >= lo && c <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    return cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    return cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

// The byte-string type and its one decoding boundary live in byte-string.ts.
export {
  type ByteString,
  byteStringToBytes,
  bytesToByteString,
  fromByteString,
  toByteString,
} from "./byte-string.js";
