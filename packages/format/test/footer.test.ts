import {
  encodeFooter,
  FOOTER_SIZE,
  FormatError,
  LEGACY_FOOTER_SIZE,
  parseFooter,
} from "@seekable/format";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

/** crfs footer: gzip header with FEXTRA, XLEN=22, "%016xSTARGZ", final stored block, 8 zeros. */
function legacyFooter(off: number): Buffer {
  const b = Buffer.alloc(LEGACY_FOOTER_SIZE);
  b.set([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff], 0);
  b.writeUInt16LE(22, 10);
  b.write(`${off.toString(16).padStart(16, "0")}STARGZ`, 12, "latin1");
  b.set([0x01, 0x00, 0x00, 0xff, 0xff], 34);
  return b;
}

// Bytes of the 51-byte footer whose corruption must be detected: ID1 ID2 CM, FLG (FEXTRA bit),
// XLEN, SI1 SI2, LEN, "STARGZ".
const CHECKED = [0, 1, 2, 10, 11, 12, 13, 14, 15, 32, 33, 34, 35, 36, 37];

describe("footer", () => {
  it("matches the reference bytes for 0x1234", () => {
    const hex =
      "1f8b08040000000000ff" +
      "1a00" +
      "5347" +
      "1600" +
      Buffer.from("0000000000001234STARGZ", "latin1").toString("hex") +
      "010000ffff" +
      "0000000000000000";
    expect(Buffer.from(encodeFooter(0x1234)).toString("hex")).toBe(hex);
    expect(FOOTER_SIZE).toBe(51);
  });

  it("round-trips any offset 0..2^53-1, alone or at the end of a longer tail", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.uint8Array({ maxLength: 200 }), (off, prefix) => {
        const f = encodeFooter(off);
        expect(f.length).toBe(51);
        expect(parseFooter(f)).toEqual({ tocOffset: off, footerSize: 51, legacy: false });
        const tail = Buffer.concat([prefix, f]);
        expect(parseFooter(tail).tocOffset).toBe(off);
      }),
      { numRuns: 500 },
    );
  });

  it("the footer is a valid empty gzip member", async () => {
    const { gunzipSync } = await import("node:zlib");
    expect(gunzipSync(encodeFooter(123456789)).length).toBe(0);
  });

  it("rejects bad offsets when encoding", () => {
    for (const bad of [-1, 1.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => encodeFooter(bad)).toThrow(RangeError);
    }
  });

  it("a corrupted magic/XLEN/SG/LEN/STARGZ byte is rejected, never a wrong offset", () => {
    fc.assert(
      fc.property(
        fc.maxSafeNat(),
        fc.constantFrom(...CHECKED),
        fc.integer({ min: 1, max: 255 }),
        (off, pos, mask) => {
          const f = Buffer.from(encodeFooter(off));
          f[pos] ^= mask;
          expect(() => parseFooter(f)).toThrow(FormatError);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("clearing FEXTRA in FLG is rejected", () => {
    const f = Buffer.from(encodeFooter(99));
    f[3] = 0;
    expect(() => parseFooter(f)).toThrow(FormatError);
  });

  it("any single-byte change either throws or yields the same offset, except in the hex digits", () => {
    fc.assert(
      fc.property(
        fc.maxSafeNat(),
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 1, max: 255 }),
        (off, pos, mask) => {
          fc.pre(pos < 16 || pos >= 32);
          const f = Buffer.from(encodeFooter(off));
          f[pos] ^= mask;
          let got: number | undefined;
          try {
            got = parseFooter(f).tocOffset;
          } catch (e) {
            expect(e).toBeInstanceOf(FormatError);
            return;
          }
          expect(got).toBe(off);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("a non-hex character in the offset is rejected", () => {
    fc.assert(
      fc.property(
        fc.maxSafeNat(),
        fc.integer({ min: 16, max: 31 }),
        fc.integer({ min: 0, max: 255 }).filter((c) => !/[0-9a-fA-F]/.test(String.fromCharCode(c))),
        (off, pos, c) => {
          const f = Buffer.from(encodeFooter(off));
          f[pos] = c;
          expect(() => parseFooter(f)).toThrow(FormatError);
        },
      ),
    );
  });

  it("an offset above 2^53-1 is rejected instead of being rounded", () => {
    for (const hex of ["ffffffffffffffff", "0020000000000000", "0020000000000001"]) {
      const f = Buffer.from(encodeFooter(0));
      f.write(hex, 16, "latin1");
      expect(() => parseFooter(f)).toThrow(FormatError);
    }
    const f = Buffer.from(encodeFooter(0));
    f.write("001fffffffffffff", 16, "latin1");
    expect(parseFooter(f).tocOffset).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("parses the 47-byte legacy (crfs) footer", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.uint8Array({ maxLength: 64 }), (off, prefix) => {
        const tail = Buffer.concat([prefix, legacyFooter(off)]);
        expect(parseFooter(tail)).toEqual({ tocOffset: off, footerSize: 47, legacy: true });
      }),
    );
  });

  it("a corrupted legacy footer is rejected", () => {
    const checked = [0, 1, 2, 10, 11, 28, 29, 30, 31, 32, 33];
    fc.assert(
      fc.property(
        fc.maxSafeNat(),
        fc.constantFrom(...checked),
        fc.integer({ min: 1, max: 255 }),
        (off, pos, mask) => {
          const f = legacyFooter(off);
          f[pos] ^= mask;
          expect(() => parseFooter(f)).toThrow(FormatError);
        },
      ),
    );
  });

  it("rejects short, empty and random tails", () => {
    expect(() => parseFooter(new Uint8Array(0))).toThrow(FormatError);
    expect(() => parseFooter(encodeFooter(5).subarray(1))).toThrow(FormatError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (b) => {
        expect(() => parseFooter(b)).toThrow(FormatError);
      }),
    );
  });
});
