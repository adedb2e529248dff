import { createHash, type Hash } from "node:crypto";
import { SeekableError } from "@seekable/format";

const ALGORITHMS: Record<string, string> = { sha256: "sha256", sha512: "sha512" };

export function isSupportedDigest(digest: string): boolean {
  return /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/.test(digest);
}

/** The digest of bytes with the algorithm of `like` (sha256 by default). */
export function digestOf(bytes: Uint8Array, like = "sha256:"): string {
  const d = new Digester(like);
  d.update(bytes);
  return d.digest();
}

/** Incremental digest in the algorithm named by an expected digest ("sha512:..." hashes sha512). */
export class Digester {
  private readonly hash: Hash;
  readonly algorithm: string;
  constructor(like = "sha256:") {
    const alg = like.split(":")[0] ?? "";
    const node = ALGORITHMS[alg];
    if (node === undefined)
      throw new SeekableError(`unsupported digest algorithm ${JSON.stringify(alg)}`, "unsupported");
    this.algorithm = alg;
    this.hash = createHash(node);
  }
  update(bytes: Uint8Array): void {
    this.hash.update(bytes);
  }
  digest(): string {
    return `${this.algorithm}:${this.hash.digest("hex")}`;
  }
}

/** A digest shortened for messages: "sha256:0123456789ab". */
export function shortDigest(digest: string): string {
  const [alg, hex = ""] = digest.split(":");
  return `${alg}:${hex.slice(0, 12)}`;
}
