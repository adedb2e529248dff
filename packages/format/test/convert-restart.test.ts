// The restart path of convertLayer (a duplicate name aborts the streaming pass, the sink is
// reset and an index pass writes the layer again) must leave exactly the reported bytes in the
// sink, even when the first pass still has writes in flight. The sink here is a fault
// injector: a positional "file" whose writes are slow and finish in a random order, as
// positional writes on a loaded machine can. The real file sink is covered by the CLI test.

import { Readable } from "node:stream";
import { BufferRangeSource, convertLayer, type LayerInput, LayerReader } from "@seekable/format";
import { makeTar, pseudoRandom, sha } from "@seekable/test-kit/tar.js";
import { describe, expect, it } from "vitest";

/** Positional writes (like FileHandle.write at a position) that complete after a delay. */
class DelayedPositionalSink {
  private file = Buffer.alloc(0);
  private pos = 0;
  private inFlight = 0;
  resets = 0;
  /** Writes still in flight when reset was called (each one can land in the new file). */
  inFlightAtReset = 0;
  constructor(private readonly maxDelayMs: number) {}

  async write(data: Uint8Array): Promise<void> {
    const at = this.pos; // the position is taken when the write is issued
    this.pos += data.length;
    this.inFlight++;
    await new Promise((r) => setTimeout(r, Math.random() * this.maxDelayMs));
    this.inFlight--;
    const end = at + data.length;
    if (end > this.file.length) {
      const grown = Buffer.alloc(end);
      this.file.copy(grown);
      this.file = grown;
    }
    this.file.set(data, at);
  }

  async reset(): Promise<void> {
    this.resets++;
    this.inFlightAtReset += this.inFlight;
    this.file = Buffer.alloc(0);
    this.pos = 0;
  }

  get bytes(): Buffer {
    return this.file;
  }
}

const bytesInput = (b: Buffer): LayerInput => ({ open: () => Readable.from([b]) });

describe("restart after a duplicate name", () => {
  it("the sink holds exactly the reported blob, though first-pass writes were still in flight", async () => {
    // 8 MiB of incompressible files before the duplicate: more 1 MiB batches than the pool
    // keeps in flight, so deliveries (slow writes) are under way when the duplicate is hit.
    const items = [];
    for (let i = 0; i < 12; i++) items.push({ name: `f${i}`, body: pseudoRandom(700_000, i) });
    items.push({ name: "f0", body: Buffer.from("the last copy wins") });
    const tar = await makeTar(items);
    for (let round = 0; round < 2; round++) {
      const sink = new DelayedPositionalSink(200);
      const res = await convertLayer(bytesInput(tar), sink, {
        threads: 2,
        level: 1,
        chunkSize: 256 << 10,
      });
      expect(sink.resets).toBe(1);
      expect(sink.inFlightAtReset).toBe(0);
      expect(sink.bytes.length).toBe(res.size);
      expect(sha(sink.bytes)).toBe(res.digest);
      const r = await LayerReader.open(new BufferRangeSource(sink.bytes));
      expect(Buffer.from(await r.read("f0")).toString()).toBe("the last copy wins");
    }
  });
});
