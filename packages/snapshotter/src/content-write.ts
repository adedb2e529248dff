import { randomBytes } from "node:crypto";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import type { ContainerdService } from "./containerd.js";
import { ALREADY_EXISTS, grpcCode, NOT_FOUND } from "./grpc-code.js";

/** Bytes per Write message: well under gRPC's 4 MiB message limit. */
const MESSAGE = 1 << 20;

export interface BlobToWrite {
  digest: string;
  size: number;
  labels: Record<string, string>;
  /** The bytes, in order (each chunk any size). */
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/**
 * Writes a blob into containerd's content store (the Write stream: WRITE messages, then
 * COMMIT with the expected digest and size, so containerd verifies it). A blob already there
 * gets its labels set instead. Returns whether it was written.
 */
export async function writeContent(
  content: ContainerdService,
  blob: BlobToWrite,
): Promise<boolean> {
  if (await exists(content, blob.digest)) {
    await setLabels(content, blob);
    return false;
  }
  const ref = `seekable-pull-${blob.digest}-${randomBytes(4).toString("hex")}`;
  const write = (
    content.client as unknown as {
      Write(md: unknown): ClientDuplexStream<unknown, unknown>;
    }
  ).Write(content.metadata());
  const done = new Promise<void>((res, rej) => {
    write.on("data", () => {});
    write.on("error", rej);
    write.on("end", res);
  });
  done.catch(() => {}); // awaited below; an early failure must not be unhandled
  const send = async (msg: unknown) => {
    if (!write.write(msg)) await Promise.race([new Promise((r) => write.once("drain", r)), done]);
  };
  try {
    let offset = 0;
    await send({ action: "STAT", ref, total: blob.size, expected: blob.digest });
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      const data = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await send({ action: "WRITE", ref, offset, data });
      offset += data.length;
    };
    for await (const chunk of blob.data) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= MESSAGE) await flush();
    }
    if (pendingBytes > 0) await flush();
    await send({
      action: "COMMIT",
      ref,
      offset,
      total: blob.size,
      expected: blob.digest,
      labels: blob.labels,
    });
    write.end();
    await done;
    return true;
  } catch (e) {
    write.cancel();
    if (grpcCode(e) !== ALREADY_EXISTS) throw e;
  }
  await setLabels(content, blob);
  return false;
}

async function exists(content: ContainerdService, digest: string): Promise<boolean> {
  try {
    await content.call("Info", { digest });
    return true;
  } catch (e) {
    if (grpcCode(e) === NOT_FOUND) return false;
    throw e;
  }
}

/** A blob already present: its GC labels are set (the others it has are kept). */
async function setLabels(content: ContainerdService, blob: BlobToWrite): Promise<void> {
  const paths = Object.keys(blob.labels).map((k) => `labels.${k}`);
  if (paths.length === 0) return;
  await content.call("Update", {
    info: { digest: blob.digest, labels: blob.labels },
    update_mask: { paths },
  });
}
