import type { ImageFS, MergedNode } from "@seekable/reader";
import type { Content } from "../content.js";
import { ContentFiles } from "./files.js";
import { type FirstReadListener, fanOut, type Guessing } from "./guessing.js";
import { JsRequires } from "./js-requires.js";
import { LoaderPrefetch } from "./loader-prefetch.js";
import { PythonImports } from "./python-imports.js";

export interface GuessOptions {
  /** Fetch what the dynamic loader will read next when a program is read (default true). */
  loaderPrefetch?: boolean;
  /** Fetch the modules a Python or JavaScript module imports when it is read (default true). */
  importPrefetch?: boolean;
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
  const imports = opts.importPrefetch !== false;
  const files = new ContentFiles(contentOf);
  return fanOut(
    opts.loaderPrefetch === false ? undefined : new LoaderPrefetch(fs, files, guessing),
    imports ? new PythonImports(fs, files, guessing) : undefined,
    imports ? new JsRequires(fs, files, guessing) : undefined,
  );
}
