// The non-eStargz case is a class, not a message: readers fall back to streaming a plain
// tar.gz on NotEStargzError only; a damaged eStargz blob is some other FormatError.
import { gzipSync } from "node:zlib";
import {
  BufferRangeSource,
  encodeFooter,
  FormatError,
  LayerReader,
  NotEStargzError,
  parseFooter,
} from "@seekable/format";
import { describe, expect, it } from "vitest";

describe("NotEStargzError", () => {
  it("is a FormatError, named as itself", () => {
    const e = new NotEStargzError("x");
    expect(e).toBeInstanceOf(FormatError);
    expect(e.name).toBe("NotEStargzError");
  });

  it("parseFooter throws it for a plain gzip tail", () => {
    const plain = gzipSync(Buffer.alloc(4096, 7));
    expect(() => parseFooter(plain)).toThrow(NotEStargzError);
  });

  it("LayerReader.open throws it for a plain tar.gz and for a blob too small for a footer", async () => {
    const plain = gzipSync(Buffer.alloc(10240));
    await expect(LayerReader.open(new BufferRangeSource(plain))).rejects.toBeInstanceOf(
      NotEStargzError,
    );
    await expect(
      LayerReader.open(new BufferRangeSource(new Uint8Array(20))),
    ).rejects.toBeInstanceOf(NotEStargzError);
  });

  it("a footer whose TOC offset is outside the blob is a FormatError, not NotEStargzError", async () => {
    const blob = Buffer.concat([Buffer.alloc(100), encodeFooter(1 << 20)]);
    const err = await LayerReader.open(new BufferRangeSource(blob)).catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(err).not.toBeInstanceOf(NotEStargzError);
  });
});
