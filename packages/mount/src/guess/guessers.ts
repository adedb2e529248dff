import type { ImageFS, MergedNode } from "@seekable/reader";
import type { Content } from "../content.js";
import { ContentFiles } from "./files.js";
import { type FirstReadListener, fanOut, type Guessing } from "./guessing.js";
import { JsRequires } from "./js-requires.js";
import { LoaderPrefetch } from "./loader-prefetch.js";
import { PythonImports } from "./python-imports.js";

export interface GuessOptions {
  /**
   * Fetch what a start reads next (default true): the libraries the dynamic loader opens when
   * a program is read, the modules a Python or JavaScript module imports (`--no-guess`).
   */
  guess?: boolean;
}

/**
 * The guessers a host tells of each first read, over one merged image, sharing `guessing`
 * (one per mount or store: its bounds hold for everything the host guesses).
 */
export function guessers(
  fs: ImageFS,
  contentOf: (m: MergedNode) => Content | undefined,
  opts: GuessOptions,
  guessing: Guessing,
): FirstReadListener | undefined {
  if (opts.guess === false) return undefined;
  const files = new ContentFiles(contentOf);
  return fanOut(
    new LoaderPrefetch(fs, files, guessing),
    new PythonImports(fs, files, guessing),
    new JsRequires(fs, files, guessing),
  );
}
