import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { type ConvertResult, convertLayer, fileInput } from "@seekable/format";
import { CliError } from "../errors.js";
import { AtomicFileSink, onInterrupt, stdoutSink } from "../output.js";
import { printRecord } from "../present.js";

export interface ConvertFlags {
  chunkSize?: number;
  level?: number;
  prioritizedFiles?: string;
  allowMissingPrioritized?: boolean;
  threads?: number;
  json?: boolean;
}

export async function convertCommand(
  input: string,
  output: string,
  flags: ConvertFlags,
): Promise<void> {
  const prioritized = flags.prioritizedFiles
    ? await readPriorityList(flags.prioritizedFiles)
    : undefined;
  let spoolDir: string | undefined;
  let unregister: (() => void) | undefined;
  let inPath = input;
  try {
    if (input === "-") {
      // stdin is read more than once when names repeat or files are prioritized: spool it.
      spoolDir = await mkdtemp(join(tmpdir(), "seekable-stdin-"));
      const dir = spoolDir;
      unregister = onInterrupt(() => rm(dir, { recursive: true, force: true }));
      inPath = join(spoolDir, "input");
      await pipeline(process.stdin, createWriteStream(inPath));
    } else {
      const st = await stat(input);
      if (!st.isFile()) throw new CliError(`${input}: not a regular file`);
    }
    const opts = {
      chunkSize: flags.chunkSize,
      level: flags.level,
      threads: flags.threads,
      prioritizedFiles: prioritized,
      allowMissingPrioritized: flags.allowMissingPrioritized,
    };
    let result: ConvertResult;
    if (output === "-") {
      result = await convertLayer(fileInput(inPath), stdoutSink, opts);
    } else {
      const sink = await AtomicFileSink.create(output).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") throw new CliError(`${output}: directory does not exist`, true);
        if (e.code === "EACCES") throw new CliError(`${output}: permission denied`, true);
        throw e;
      });
      try {
        result = await convertLayer(fileInput(inPath), sink, opts);
        await sink.commit();
      } catch (e) {
        await sink.discard();
        throw e;
      }
    }
    for (const m of result.missedPrioritized)
      process.stderr.write(
        `seekable: warning: prioritized file ${JSON.stringify(m)} is not in the layer\n`,
      );
    const record = {
      digest: result.digest,
      size: result.size,
      diffID: result.diffID,
      tocDigest: result.tocDigest,
      uncompressedSize: result.uncompressedSize,
      entries: result.entries,
      chunks: result.chunks,
    };
    // With the blob on stdout, the report goes to stderr.
    printRecord(record, !!flags.json, output === "-" ? process.stderr : process.stdout);
  } finally {
    unregister?.();
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  }
}

async function readPriorityList(path: string): Promise<string[]> {
  const text = await readFile(path, "utf8");
  return text
    .split("\n")
    .map((l) => l.replace(/\r$/, ""))
    .filter((l) => l.trim() !== "");
}
