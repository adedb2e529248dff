import { type NameReader, STR_CLASS } from "./toc-scan.js";

/**
 * Tree keys of a TOC index: a node is keyed by the bytes of its cleaned path (no leading
 * slash, no empty, "." or ".." part, no trailing slash; "" is the root). The one hash of
 * keys is here: polynomial, base 31, kept in 24 bits (see toc-scan.ts for why).
 */
export const KEY_HASH_SEED = 0x5bd1e9;

/**
 * Reads keys, and is the index's NameReader: the scanner hands it each entry name, so that a
 * name is scanned and hashed in one pass. What the last read learned is in its fields.
 */
export class KeyReader implements NameReader {
  /** The key's end (the read's, or one less when one trailing slash is dropped) when the
   *  bytes were already a clean key, else -1 (the caller cleans the name and reads again). */
  end = -1;
  hash = KEY_HASH_SEED;
  /** The hash of the parent's key (up to the last slash), and that slash (-1: none). */
  prefixHash = KEY_HASH_SEED;
  lastSlash = -1;
  slashes = 0;

  /**
   * Reads buf[s, e) as a key; returns where the read stopped. Without `e`, buf[s...] is the
   * contents of a JSON string, and the read stops at its first byte that is not plain ASCII
   * (STR_CLASS): the key is clean only when that is the closing quote. `prefixes`, when
   * given, receives the end and the hash of every ancestor's key (each slash's position and
   * the hash before it).
   */
  read(buf: Uint8Array, s: number, e = -1, prefixes?: number[]): number {
    const json = e < 0;
    const stop = json ? buf.length : e;
    const plain = STR_CLASS; // a local: an imported binding is checked on every load
    let h = KEY_HASH_SEED;
    let ph = KEY_HASH_SEED; // up to the last slash
    let ls = -1;
    let pph = KEY_HASH_SEED; // up to the slash before it
    let pls = -1;
    let n = 0;
    let seg = s;
    let clean = true;
    let p = s;
    for (; p < stop; p++) {
      const c = buf[p];
      if (c === 0x2f) {
        // An empty, "." or ".." part (written in place: see toc-scan.ts).
        const len = p - seg;
        if (len === 0 || (buf[seg] === 0x2e && (len === 1 || (len === 2 && buf[seg + 1] === 0x2e))))
          clean = false;
        pph = ph;
        pls = ls;
        ph = h;
        ls = p;
        n++;
        seg = p + 1;
        if (prefixes !== undefined) prefixes.push(p, h);
      } else if (json && plain[c] !== 0) break;
      h = (h * 31 + c) & 0xffffff;
    }
    // No leading slash; in JSON, a plain string to its closing quote.
    clean = clean && (p === s || buf[s] !== 0x2f) && (!json || buf[p] === 0x22);
    if (seg === p && p > s) {
      // One trailing slash: the key ends before it (its part was checked at the slash).
      this.end = clean ? p - 1 : -1;
      this.hash = ph;
      this.prefixHash = pph;
      this.lastSlash = pls;
      this.slashes = n - 1;
      return p;
    }
    const len = p - seg;
    if (len > 0 && buf[seg] === 0x2e && (len === 1 || (len === 2 && buf[seg + 1] === 0x2e)))
      clean = false;
    this.end = clean ? p : -1;
    this.hash = h;
    this.prefixHash = ph;
    this.lastSlash = ls;
    this.slashes = n;
    return p;
  }
}
