import { createWriteStream, fstat as fstatCb, type Stats } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import {
  type ConvertOptions,
  type ConvertResult,
  convertLayer,
  FormatError,
  fileInput,
  isSystemError,
  SpoolError,
} from "@seekable/format";
import {
  type ConvertImageResult,
  convertImage,
  DockerArchiveSource,
  type ImageRef,
  ImageRefError,
  type ImageSink,
  type ImageSource,
  isImageRef,
  OciSink,
  OciSource,
  parseImageRef,
  RegistrySink,
  RegistrySource,
  SinkError,
} from "@seekable/image";
import { formatRepository, parsePlatform, RegistryError } from "@seekable/registry";
import { CliError } from "../errors.js";
import { AtomicFileSink, onInterrupt, StreamSink } from "../output.js";
import { printRecord } from "../present.js";
import { registryClient } from "../target.js";

export interface ConvertFlags {
  platform?: string;
  concurrency?: number;
  force?: boolean;
  creds?: string;
  plainHttp?: boolean;
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
  if (isImageRef(input) || isImageRef(output)) return convertImageCommand(input, output, flags);
  const prioritized = flags.prioritizedFiles
    ? await readPriorityList(flags.prioritizedFiles)
    : undefined;
  let spoolDir: string | undefined;
  let unregister: (() => void) | undefined;
  let inPath = input;
  try {
    const inStat = input === "-" ? await fstat(0).catch(() => undefined) : await stat(input);
    if (input !== "-" && !inStat?.isFile()) throw new CliError(`${input}: not a regular file`);
    await refuseSameFile(inStat, input, output);
    if (input === "-") {
      // stdin is read more than once when names repeat or files are prioritized: spool it.
      const base = tmpdir();
      try {
        spoolDir = await mkdtemp(join(base, "seekable-stdin-"));
        const dir = spoolDir;
        unregister = onInterrupt(() => rm(dir, { recursive: true, force: true }));
        inPath = join(spoolDir, "input");
        await pipeline(process.stdin, createWriteStream(inPath));
      } catch (e) {
        if (!isSystemError(e) || e.syscall === "read") throw e;
        throw new CliError(new SpoolError(base, e).message, true, { cause: e });
      }
    }
    const opts = {
      chunkSize: flags.chunkSize,
      level: flags.level,
      threads: flags.threads,
      prioritizedFiles: prioritized,
      allowMissingPrioritized: flags.allowMissingPrioritized,
    };
    let result: ConvertResult;
    const outStat = output === "-" ? undefined : await stat(output).catch(() => undefined);
    if (outStat?.isDirectory()) throw new CliError(`${output}: is a directory`, true);
    try {
      if (output === "-" || (outStat && !outStat.isFile())) {
        result = await convertToStream(inPath, output, opts);
      } else {
        const sink = await AtomicFileSink.create(output);
        try {
          result = await convertLayer(fileInput(inPath), sink, opts);
          // What is renamed into place is checked to be the blob reported below.
          await sink.commit({ digest: result.digest, size: result.size });
        } catch (e) {
          await sink.discard();
          throw e;
        }
      }
    } catch (e) {
      // The spool under TMPDIR is neither the input nor the output: its line names it.
      if (e instanceof SpoolError) throw new CliError(e.message, true, { cause: e });
      throw e;
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

/** stdout or an existing device or FIFO: written in place (a rename would replace a device). */
async function convertToStream(
  inPath: string,
  output: string,
  opts: ConvertOptions,
): Promise<ConvertResult> {
  const sink = output === "-" ? StreamSink.stdout() : await StreamSink.open(output);
  // A closed stdout cuts the blob short: for convert that is a failure (one line, exit 1),
  // not the "reader has seen enough" that the process-wide EPIPE handler assumes.
  const inherited = output === "-" ? process.stdout.listeners("error") : [];
  for (const l of inherited) process.stdout.off("error", l as (e: Error) => void);
  try {
    const result = await convertLayer(fileInput(inPath), sink, opts);
    await sink.end();
    return result;
  } finally {
    sink.close();
    for (const l of inherited) process.stdout.on("error", l as (e: Error) => void);
  }
}

/** `convert X X` (or X through another path or a hardlink) would replace its own input. */
async function refuseSameFile(
  inStat: Stats | undefined,
  input: string,
  output: string,
): Promise<void> {
  if (output === "-" || !inStat?.isFile()) return;
  const outStat = await stat(output).catch(() => undefined);
  if (outStat && outStat.dev === inStat.dev && outStat.ino === inStat.ino)
    throw new CliError(
      `${output}: is the input ${input === "-" ? "(stdin)" : input}; choose another output`,
      true,
    );
}

const fstat = promisify(fstatCb);

async function readPriorityList(path: string): Promise<string[]> {
  const text = await readFile(path, "utf8");
  return text
    .split("\n")
    .map((l) => l.replace(/\r$/, ""))
    .filter((l) => l.trim() !== "");
}

/** `seekable convert SRC DST` for whole images (docker://, oci:, docker-archive:). */
async function convertImageCommand(
  input: string,
  output: string,
  flags: ConvertFlags,
): Promise<void> {
  if (!isImageRef(input))
    throw new CliError(`${input}: a layer file converts to a file, not an image`, true);
  let src: ImageRef;
  let dst: ImageRef;
  try {
    src = parseImageRef(input);
    dst = parseImageRef(output);
  } catch (e) {
    // Both name the argument they refuse.
    if (e instanceof ImageRefError || e instanceof RegistryError)
      throw new CliError(e.message, true, { cause: e });
    throw e;
  }

  if (!isImageRef(output))
    throw new CliError(`${output}: an image converts to docker:// or oci:`, true);
  if (dst.kind === "docker-archive")
    throw new CliError(`${output}: docker-archive: is not an output`, true);
  const platform = flags.platform ? parsePlatform(flags.platform) : undefined;
  const prioritized = flags.prioritizedFiles
    ? await readPriorityList(flags.prioritizedFiles)
    : undefined;
  const client = registryClient(flags);
  let source: ImageSource | undefined;
  let sink: ImageSink | undefined;
  try {
    source =
      src.kind === "docker"
        ? new RegistrySource(client, src.ref, input)
        : src.kind === "oci"
          ? await OciSource.open(src.dir, src.tag, input)
          : await DockerArchiveSource.open(src.file, src.tag, input);
    sink =
      dst.kind === "docker"
        ? new RegistrySink(client, dst.ref, output)
        : await OciSink.open((dst as { dir: string }).dir, (dst as { tag?: string }).tag, output);
    const tty = process.stderr.isTTY;
    const result = await convertImage(source, sink, {
      platform,
      concurrency: flags.concurrency,
      force: flags.force,
      prioritizedFiles: prioritized,
      chunkSize: flags.chunkSize,
      level: flags.level,
      threads: flags.threads,
      onProgress: tty ? (line) => process.stderr.write(`${line}\n`) : undefined,
    });
    printImageResult(result, !!flags.json);
  } catch (e) {
    throw imageError(e, input, output, src, dst);
  } finally {
    await source?.close().catch(() => {});
    await sink?.close().catch(() => {});
    await client.close().catch(() => {});
  }
}

function printImageResult(r: ConvertImageResult, json: boolean): void {
  const layers = r.layers.map((l) => ({
    digest: l.digest,
    size: l.size,
    diffID: l.diffID,
    tocDigest: l.tocDigest,
    uncompressedSize: l.uncompressedSize,
  }));
  if (json) {
    const doc = {
      manifest: r.manifest,
      mediaType: r.mediaType,
      ...(r.manifests && { manifests: r.manifests }),
      layers,
    };
    process.stdout.write(`${JSON.stringify(doc)}\n`);
    return;
  }
  const out = process.stdout;
  const kind = r.manifests ? "index" : "manifest";
  out.write(`${kind.padEnd(8)}  ${r.manifest}\n`);
  for (const m of r.manifests ?? []) out.write(`  ${m.platform ?? "-"}  ${m.digest}\n`);
  for (const [i, l] of r.layers.entries()) {
    const how = l.converted ? "converted" : "kept";
    out.write(
      `layer ${String(i + 1).padEnd(2)}  ${l.digest}  ${l.size} bytes  toc ${l.tocDigest}  (${how})\n`,
    );
  }
}

/** One line naming the side (IN or OUT) and the cause. */
function imageError(
  e: unknown,
  input: string,
  output: string,
  src: ImageRef,
  dst: ImageRef,
): unknown {
  if (e instanceof CliError) return e;
  if (e instanceof RegistryError) {
    const inSrc = src.kind === "docker" && e.subject.startsWith(formatRepository(src.ref));
    const inDst = dst.kind === "docker" && e.subject.startsWith(formatRepository(dst.ref));
    const name = !inSrc && inDst ? output : input;
    const at = e.subject.indexOf("@");
    const what = at >= 0 ? `${e.subject.slice(at + 1)}: ` : "";
    return new CliError(`${name}: ${what}${e.reason}`, true, { cause: e });
  }
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === "string" && err.path) return e;
  // Anything else that is not an input error is a bug: it keeps its class and stack.
  if (!(e instanceof FormatError) && typeof err?.code !== "string") return e;
  const msg = (err?.message ?? String(e)).replace(/\s*\n\s*/g, " ");
  const outputSide = e instanceof SinkError;
  return new CliError(`${outputSide ? output : input}: ${msg}`, true, { cause: e });
}
