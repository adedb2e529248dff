import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import {
  byteStringToBytes,
  cleanEntryName,
  endStream,
  FormatError,
  fromByteString,
  type Node,
  newNode,
  readTarEntries,
  regularNode,
  TOC_TYPE_OF_TAR,
  VerificationError,
  writeChunk,
} from "@seekable/format";
import type { LayerView } from "./layer-view.js";

/**
 * A layer that is not eStargz: streamed once, whole, with file contents spooled to a
 * temporary file so that any file can then be read. The blob's digest is checked as it
 * streams. Call `close()` to remove the spool.
 */
export class WholeLayer implements LayerView {
  private readonly nodes = new Map<string, Node>();
  private readonly offsets = new Map<Node, number>();

  private constructor(
    private readonly dir: string,
    private readonly spool: string,
  ) {
    const root = newNode("", "dir");
    root.mode = 0o755;
    this.nodes.set("", root);
  }

  static async load(blob: Readable, expectedDigest?: string): Promise<WholeLayer> {
    const dir = await mkdtemp(join(tmpdir(), "seekable-layer-"));
    const layer = new WholeLayer(dir, join(dir, "files"));
    try {
      await layer.fill(blob, expectedDigest);
      return layer;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private async fill(blob: Readable, expectedDigest?: string): Promise<void> {
    const hash = createHash("sha256");
    blob.on("data", (d: Buffer) => hash.update(d));
    const out = createWriteStream(this.spool);
    // A failed parse or write must not leave the spool's descriptor open.
    try {
      await this.spoolEntries(blob, out);
    } finally {
      out.destroy();
    }
    const got = `sha256:${hash.digest("hex")}`;
    if (expectedDigest && got !== expectedDigest) {
      throw new VerificationError(`layer ${expectedDigest}: content has digest ${got}`);
    }
    for (const n of this.nodes.values()) {
      if (n.type !== "hardlink") continue;
      const t = this.nodes.get(cleanEntryName(n.linkName));
      if (t?.type !== "reg")
        throw new FormatError(`hardlink ${n.path} points to missing ${n.linkName}`);
      n.target = t;
      t.numLink++;
    }
  }

  /**
   * Tar entries to nodes, regular files' contents appended to the spool. The tar's byte
   * strings become text here, as the TOC reader's are: nodes, paths and lookups hold text.
   */
  private async spoolEntries(blob: Readable, out: Writable): Promise<void> {
    let pos = 0;
    for await (const e of readTarEntries(blob)) {
      const type = TOC_TYPE_OF_TAR[e.header.type];
      const n = this.ensure(fromByteString(e.clean), type);
      Object.assign(n, {
        type,
        size: type === "reg" ? e.header.size : 0,
        mode: e.header.mode,
        uid: e.header.uid,
        gid: e.header.gid,
        userName: fromByteString(e.header.uname),
        groupName: fromByteString(e.header.gname),
        modtime: e.header.mtimeSec
          ? `${new Date((e.header.mtimeSec + (e.header.mtimeNsec >= 5e8 ? 1 : 0)) * 1000).toISOString().slice(0, 19)}Z`
          : "",
        linkName: fromByteString(e.header.linkname),
        devMajor: e.header.devmajor,
        devMinor: e.header.devminor,
        xattrs: Object.fromEntries(
          [...e.header.xattrs].map(([k, v]) => [
            fromByteString(k),
            byteStringToBytes(v).toString("base64"),
          ]),
        ),
      });
      if (type === "reg") {
        this.offsets.set(n, pos);
        const h = createHash("sha256");
        for await (const c of e.body) {
          h.update(c);
          pos += c.length;
          await writeChunk(out, c);
        }
        n.digest = `sha256:${h.digest("hex")}`;
      }
    }
    await endStream(out);
  }

  walk(): Iterable<Node> {
    return this.nodes.values();
  }

  lookup(path: string): Node | undefined {
    return this.nodes.get(cleanEntryName(path));
  }

  async read(path: string, offset = 0, length?: number): Promise<Uint8Array> {
    const n = this.regular(path);
    const end = Math.min(n.size, length === undefined ? n.size : offset + length);
    if (offset >= end) return new Uint8Array(0);
    const fh = await open(this.spool, "r");
    try {
      const buf = Buffer.allocUnsafe(end - offset);
      const { bytesRead } = await fh.read(
        buf,
        0,
        buf.length,
        (this.offsets.get(n) as number) + offset,
      );
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async *stream(path: string): AsyncIterable<Uint8Array> {
    const n = this.regular(path);
    if (n.size === 0) return;
    const start = this.offsets.get(n) as number;
    yield* createReadStream(this.spool, { start, end: start + n.size - 1, highWaterMark: 1 << 20 });
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  private regular(path: string): Node {
    return regularNode(path, this.lookup(path));
  }

  private ensure(path: string, type: Node["type"]): Node {
    let n = this.nodes.get(path);
    if (n) return n;
    const slash = path.lastIndexOf("/");
    const parent = this.ensure(slash < 0 ? "" : path.slice(0, slash), "dir");
    n = newNode(path, type);
    parent.children ??= new Map();
    parent.children.set(path.slice(slash + 1), n);
    this.nodes.set(path, n);
    return n;
  }
}
