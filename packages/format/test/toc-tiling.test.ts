// The chunk tiling rules of a TOC, checked against a plain model: every chunk of a regular file
// starts where the previous one ended, is not empty, lies in the payload area (after 0, before
// the TOC, its member ending after it starts), and together they cover the file exactly. The
// index checks this once (toc-build.ts tilingFault); this test catches any second, faster path
// that would accept what the rules refuse, or a message that names the wrong place.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FormatError } from "../src/errors.js";
import { TocIndex } from "../src/toc-index.js";

const TOC_OFFSET = 200;

interface Chunk {
  offset: number;
  chunkOffset: number;
  chunkSize: number;
}
interface File {
  name: string;
  size: number;
  /** The reg entry's own chunk first, then its chunk entries. */
  chunks: Chunk[];
}

function tocOf(files: File[]): Buffer {
  const entries: Record<string, unknown>[] = [{ name: "d/", type: "dir" }];
  for (const f of files) {
    const [first, ...rest] = f.chunks;
    entries.push({ name: f.name, type: "reg", size: f.size, ...(first ?? {}) });
    for (const c of rest) entries.push({ name: f.name, type: "chunk", ...c });
  }
  return Buffer.from(JSON.stringify({ version: 1, entries }));
}

/** "ok", or the message the index must refuse the TOC with. */
function model(files: File[]): string {
  // A member ends where the next entry with an offset starts (any entry), or at the TOC.
  const all = files.flatMap((f) => f.chunks);
  const next = all.map((_, i) => all.slice(i + 1).find((c) => c.offset > 0)?.offset ?? TOC_OFFSET);
  let r = 0;
  for (const f of files) {
    let pos = 0;
    let fault: string | undefined;
    for (const [j, c] of f.chunks.entries()) {
      const i = r++;
      // An empty file's own entry holds no chunk.
      if (fault !== undefined || (j === 0 && f.size === 0)) continue;
      const cs = c.chunkSize || f.size - c.chunkOffset;
      if (c.chunkOffset !== pos) fault = `chunks do not tile the file (gap or overlap at ${pos})`;
      else if (cs <= 0) fault = `chunk at ${pos} is empty`;
      else if (c.offset <= 0 || c.offset >= TOC_OFFSET || next[i] <= c.offset)
        fault = `chunk at ${pos} has an invalid blob offset ${c.offset}`;
      else pos += cs;
    }
    // An empty file is never checked (its chunks, if any, are never read).
    if (f.size === 0) continue;
    if (fault === undefined && pos !== f.size) fault = `chunks cover ${pos} bytes of ${f.size}`;
    if (fault !== undefined) return `${f.name}: ${fault}`;
  }
  return "ok";
}

function built(files: File[]): string {
  try {
    TocIndex.build(tocOf(files), TOC_OFFSET);
    return "ok";
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    return e.message;
  }
}

/** A file whose chunks tile it, then perhaps bent: a chunk offset, size or blob offset moved. */
const file = (name: string) =>
  fc
    .record({
      sizes: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 }),
      start: fc.constantFrom(-5, 0, 1, 10, 100, 190, 199, 200, 250),
      step: fc.constantFrom(-10, 0, 1, 20),
      bend: fc.array(
        fc.record({
          at: fc.nat(3),
          what: fc.constantFrom("chunkOffset", "chunkSize", "offset", "size", "omitSize"),
          by: fc.constantFrom(-1, 1, 2),
        }),
        { maxLength: 2 },
      ),
    })
    .map(({ sizes, start, step, bend }): File => {
      let pos = 0;
      const chunks = sizes.map((s, i) => {
        const c = { offset: Math.max(0, start + i * step), chunkOffset: pos, chunkSize: s };
        pos += s;
        return c;
      });
      let size = pos;
      for (const b of bend) {
        const c = chunks[b.at % chunks.length];
        if (b.what === "size") size = Math.max(0, size + b.by);
        else if (b.what === "omitSize") c.chunkSize = 0;
        else c[b.what] = Math.max(0, c[b.what] + b.by);
      }
      return { name, size, chunks };
    });

describe("chunk tiling", () => {
  it("the index accepts exactly the TOCs the tiling rules accept, naming the first fault", () => {
    fc.assert(
      fc.property(fc.tuple(file("d/a"), fc.option(file("d/b"), { nil: undefined })), ([a, b]) => {
        const files = b === undefined ? [a] : [a, b];
        expect(built(files)).toBe(model(files));
      }),
      { numRuns: 3000 },
    );
  });

  it("refuses each fault with one line naming the file and the place", () => {
    const ok = (chunks: Chunk[], size: number) => built([{ name: "d/f", size, chunks }]);
    const c = (offset: number, chunkOffset: number, chunkSize: number) => ({
      offset,
      chunkOffset,
      chunkSize,
    });
    expect(ok([c(10, 0, 4), c(20, 4, 4)], 8)).toBe("ok");
    expect(ok([c(10, 0, 4), c(20, 5, 3)], 8)).toBe(
      "d/f: chunks do not tile the file (gap or overlap at 4)",
    );
    expect(ok([c(10, 0, 4), c(20, 3, 5)], 8)).toBe(
      "d/f: chunks do not tile the file (gap or overlap at 4)",
    );
    expect(ok([c(10, 0, 8), c(20, 8, 0)], 8)).toBe("d/f: chunk at 8 is empty");
    expect(ok([c(10, 0, 4), c(200, 4, 4)], 8)).toBe(
      "d/f: chunk at 4 has an invalid blob offset 200",
    );
    // The second member starts before the first: the first one's range is empty.
    expect(ok([c(30, 0, 4), c(20, 4, 4)], 8)).toBe("d/f: chunk at 0 has an invalid blob offset 30");
    expect(ok([c(10, 0, 4), c(20, 4, 3)], 8)).toBe("d/f: chunks cover 7 bytes of 8");
  });
});
