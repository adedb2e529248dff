/** Marks the end of the prioritized (prefetched) region of a layer. */
export const PREFETCH_LANDMARK = ".prefetch.landmark";
/** Placed first when no files are prioritized: tells readers not to prefetch. */
export const NO_PREFETCH_LANDMARK = ".no.prefetch.landmark";
/** The reference's landmark payload: one byte 0x0f. */
export const LANDMARK_CONTENTS = Uint8Array.of(0x0f);
export const TOC_TAR_NAME = "stargz.index.json";

export function isLandmark(cleanName: string): boolean {
  return cleanName === PREFETCH_LANDMARK || cleanName === NO_PREFETCH_LANDMARK;
}
