import { createHash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import type { BatchRequest, BatchResult } from "./compress-pool.js";
import { compressionByName } from "./compression.js";

// Compresses a batch of segments into members and hashes each segment's leading chunk.
parentPort?.on("message", (req: BatchRequest) => {
  try {
    const compressor = compressionByName(req.compression);
    const data = new Uint8Array(req.buffer);
    const members: Uint8Array[] = [];
    const digests: string[] = [];
    let off = 0;
    for (let i = 0; i < req.lengths.length; i++) {
      const seg = data.subarray(off, off + req.lengths[i]);
      off += req.lengths[i];
      members.push(compressor.writeMember(seg, req.level));
      const cl = req.chunkLengths[i];
      digests.push(cl > 0 ? createHash("sha256").update(seg.subarray(0, cl)).digest("hex") : "");
    }
    const total = members.reduce((n, m) => n + m.length, 0);
    const out = new Uint8Array(total);
    let p = 0;
    for (const m of members) {
      out.set(m, p);
      p += m.length;
    }
    const res: BatchResult = {
      seq: req.seq,
      buffer: out.buffer,
      lengths: members.map((m) => m.length),
      chunkDigests: digests,
    };
    parentPort?.postMessage(res, [out.buffer]);
  } catch (e) {
    parentPort?.postMessage({ seq: req.seq, error: String((e as Error)?.message ?? e) });
  }
});
