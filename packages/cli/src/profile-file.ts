import { open } from "node:fs/promises";
import { errorLine } from "@seekable/format";
import { CliError } from "./errors.js";

/** A profile to prefetch: its paths and what to call it in messages. */
export interface Profile {
  paths: string[];
  name: string;
}

const describe = errorLine;

/**
 * A local profile file (`--prefetch FILE` of mount and store), refused when larger than the
 * cap (read no further than that). @seekable/image is loaded only here, when a profile is
 * asked for.
 */
export async function readProfileFile(file: string): Promise<Profile> {
  const { MAX_PROFILE_BYTES, parseProfile } = await import("@seekable/image");
  const fh = await open(file, "r").catch((e: NodeJS.ErrnoException) => {
    throw new CliError(`${file}: ${e.code === "ENOENT" ? "no such file" : describe(e)}`, true);
  });
  try {
    const buf = Buffer.alloc(MAX_PROFILE_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_PROFILE_BYTES) throw new CliError(`larger than ${MAX_PROFILE_BYTES} bytes`);
    }
    return { paths: parseProfile(buf.subarray(0, n)), name: file };
  } catch (e) {
    throw new CliError(`${file}: ${describe(e)}`, true, { cause: e });
  } finally {
    await fh.close();
  }
}
