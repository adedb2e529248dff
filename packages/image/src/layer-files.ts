import { cleanEntryName, fromByteString, LayerReader, readTarEntries } from "@seekable/format";
import { isEstargzLayer, TOC_DIGEST_ANNOTATION } from "./manifest-rewrite.js";
import type { Descriptor, ImageSource } from "./source.js";

/** The cleaned paths a layer holds: a pass over its tar, or the TOC of an eStargz layer. */
export async function layerFiles(source: ImageSource, desc: Descriptor): Promise<Set<string>> {
  const names = new Set<string>();
  if (isEstargzLayer(desc)) {
    const rs = await source.rangeSource(desc);
    try {
      const reader = await LayerReader.open(rs, {
        tocDigest: desc.annotations?.[TOC_DIGEST_ANNOTATION],
      });
      // From the index (implicit parent directories included): no parse of the TOC JSON.
      for (const path of reader.paths()) if (path !== "") names.add(path);
    } finally {
      await rs.close?.();
    }
    return names;
  }
  // Tar names are byte strings, the TOC's and the prioritized paths are text.
  for await (const e of readTarEntries(source.openBlob(desc))) names.add(fromByteString(e.clean));
  return names;
}

/**
 * Splits an image's prioritized paths among its layers: each path goes to the topmost layer
 * that holds it (a whiteout above hides it from the layers below). Order is kept.
 */
export function assignPrioritized(paths: string[], layers: Set<string>[]): string[][] {
  const out: string[][] = layers.map(() => []);
  for (const p of paths) {
    const clean = cleanEntryName(p);
    const slash = clean.lastIndexOf("/");
    const whiteout = `${clean.slice(0, slash + 1)}.wh.${clean.slice(slash + 1)}`;
    for (let i = layers.length - 1; i >= 0; i--) {
      const files = layers[i] as Set<string>;
      if (files.has(clean)) {
        out[i]?.push(p);
        break;
      }
      if (files.has(whiteout)) break;
    }
  }
  return out;
}
