import { createHash } from "node:crypto";

/** The chain IDs of layers with these diff IDs (OCI image spec: ChainID(n) = SHA256(ChainID(n-1) + " " + DiffID(n))). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(
      prev === undefined
        ? d
        : `sha256:${createHash("sha256").update(`${prev} ${d}`).digest("hex")}`,
    );
  }
  return out;
}
