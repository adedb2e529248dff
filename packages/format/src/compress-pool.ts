import { Worker } from "node:worker_threads";
import type { CompressionName } from "./compression.js";

export interface BatchRequest {
  seq: number;
  /** The Compressor (by name: it crosses a thread) that makes the members. */
  compression: CompressionName;
  level: number;
  buffer: ArrayBuffer;
  lengths: number[];
  /** Per segment: bytes at its start that form a chunk to digest (0: none). */
  chunkLengths: number[];
}

export interface BatchResult {
  seq: number;
  buffer: ArrayBuffer;
  lengths: number[];
  chunkDigests: string[];
  error?: string;
}

type Deliver = (seq: number, result: BatchResult) => Promise<void>;

/**
 * Worker threads that compress batches of segments. Results are delivered strictly in
 * submission order, one at a time, so the caller can write them and assign offsets.
 * `submit` waits while too much work is in flight: memory stays bounded.
 */
export class CompressPool {
  private readonly workers: { w: Worker; outstanding: number }[] = [];
  private readonly done = new Map<number, BatchResult>();
  private nextSeq = 0;
  private nextDeliver = 0;
  private inFlight = 0;
  /** The delivery loop while it runs: `close` waits for it (a write may be in flight). */
  private pumping: Promise<void> | undefined;
  private closed = false;
  private failure: Error | undefined;
  private waiters: (() => void)[] = [];

  constructor(
    threads: number,
    private readonly level: number,
    private readonly deliver: Deliver,
    private readonly maxInFlight = Math.max(3, threads * 2),
    private readonly compression: CompressionName = "gzip",
  ) {
    for (let i = 0; i < threads; i++) {
      // Workers only move buffers: a small young generation keeps their heaps (RSS) small.
      const w = new Worker(new URL("./compress-worker.js", import.meta.url), {
        resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
      });
      const slot = { w, outstanding: 0 };
      w.on("message", (res: BatchResult) => {
        slot.outstanding--;
        if (res.error) this.fail(new Error(`compression failed: ${res.error}`));
        else {
          this.done.set(res.seq, res);
          this.pump();
        }
      });
      w.on("error", (e) => this.fail(e));
      this.workers.push(slot);
    }
  }

  async submit(buffer: Uint8Array, lengths: number[], chunkLengths: number[]): Promise<void> {
    while (this.inFlight >= this.maxInFlight && !this.failure && !this.closed) await this.wait();
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error("compression pool is closed");
    const seq = this.nextSeq++;
    this.inFlight++;
    const slot = this.workers.reduce((a, b) => (b.outstanding < a.outstanding ? b : a));
    slot.outstanding++;
    const req: BatchRequest = {
      seq,
      compression: this.compression,
      level: this.level,
      buffer: buffer.buffer as ArrayBuffer,
      lengths,
      chunkLengths,
    };
    slot.w.postMessage(req, [req.buffer]);
  }

  /** Waits until every submitted batch has been delivered. */
  async drain(): Promise<void> {
    while (this.nextDeliver < this.nextSeq && !this.failure && !this.closed) await this.wait();
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error("compression pool is closed");
  }

  /**
   * Stops delivering, stops the workers and waits for a delivery in progress: once this
   * resolves nothing more reaches the caller's sink, so it may be reset or reused.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await Promise.all(this.workers.map((s) => s.w.terminate()));
    await this.pumping;
  }

  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = this.deliverReady().finally(() => {
      this.pumping = undefined;
      if (this.done.has(this.nextDeliver) && !this.failure) this.pump();
    });
  }

  /** Delivers completed batches in order, one at a time; never rejects (failures are kept). */
  private async deliverReady(): Promise<void> {
    try {
      for (;;) {
        const res = this.done.get(this.nextDeliver);
        if (!res || this.failure || this.closed) break;
        this.done.delete(this.nextDeliver);
        await this.deliver(this.nextDeliver, res);
        this.nextDeliver++;
        this.inFlight--;
        this.wake();
      }
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    this.wake();
  }

  private wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
