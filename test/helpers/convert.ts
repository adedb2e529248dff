// Test layers converted the way users convert them: a tar written from items, then
// `seekable convert TAR BLOB --json` (a process of its own), the blob and its figures back.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { describeRun, jsonOut, seekable } from "./run.js";
import { makeTar, type TarItem } from "./tar.js";

export interface ConvertedLayer {
  blob: Buffer;
  digest: string;
  diffId: string;
  toc: string;
  uncompressedSize: number;
}

/** Converts `items` as DIR/NAME.tar to DIR/NAME.blob; `args`: more convert flags. */
export async function convertItems(
  dir: string,
  name: string,
  items: TarItem[],
  ...args: string[]
): Promise<ConvertedLayer> {
  const tarPath = join(dir, `${name}.tar`);
  await writeFile(tarPath, await makeTar(items));
  const out = join(dir, `${name}.blob`);
  const r = await seekable("convert", tarPath, out, "--json", ...args);
  expect(r.code, describeRun(r)).toBe(0);
  const j = jsonOut<{
    digest: string;
    diffID: string;
    tocDigest: string;
    uncompressedSize: number;
  }>(r);
  return {
    blob: await readFile(out),
    digest: j.digest,
    diffId: j.diffID,
    toc: j.tocDigest,
    uncompressedSize: j.uncompressedSize,
  };
}
