import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { FormatError, SeekableError } from "./errors.js";
import { toByteString } from "./go-json.js";
import { isLandmark, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME } from "./landmark.js";
import { endStream, writeChunk } from "./stream-write.js";
import { cleanEntryName, quoteName, type TarHeader } from "./tar-header.js";
import {
  describeSystemError,
  type InputEntry,
  isSystemError,
  readTarEntries,
} from "./tar-input.js";
import { type ByteSink, LayerWriter, type WriteResult, type WriterOptions } from "./writer.js";

/** A layer that can be read more than once (a file; stdin is spooled to one first). */
export interface LayerInput {
  open(): Readable;
}

export function fileInput(path: string): LayerInput {
  return { open: () => createReadStream(path, { highWaterMark: 1 << 20 }) };
}

/** A sink that can start over (a temporary file): lets the common case run in one pass. */
export interface ResettableSink extends ByteSink {
  reset?(): Promise<void>;
}

export interface ConvertOptions extends WriterOptions {
  /** Paths in access order; they (with parents and hardlink targets) go before the landmark. */
  prioritizedFiles?: string[];
  /** Listed paths the layer lacks are reported instead of failing. */
  allowMissingPrioritized?: boolean;
}

export interface ConvertResult extends WriteResult {
  missedPrioritized: string[];
}

class DuplicateName extends Error {}

const dropped = (clean: string): boolean => isLandmark(clean) || clean === TOC_TAR_NAME;

/**
 * tar or tar.gz in, eStargz out, laid out as the reference's Build does: duplicates keep the
 * last copy, landmarks and TOC entries of the input are dropped, prioritized files first.
 * Without prioritized files and with a resettable sink it is one streaming pass; a duplicate
 * name (rare) restarts with an index pass. Bodies are streamed, never held whole.
 */
export async function convertLayer(
  input: LayerInput,
  sink: ResettableSink,
  opts: ConvertOptions = {},
): Promise<ConvertResult> {
  // Input errors are typed where the input is read (readTarEntries); a sink or spool error
  // passes through as it is, so a full disk is never blamed on the input.
  return await convertPasses(input, sink, opts);
}

/** The temporary spool (under TMPDIR) failed: neither the input's fault nor the output's. */
export class SpoolError extends SeekableError {
  override readonly name = "SpoolError";
  constructor(
    readonly dir: string,
    cause: Error,
  ) {
    super(`temporary directory ${dir}: ${describeSystemError(cause)}`, "system", { cause });
  }
}

async function convertPasses(
  input: LayerInput,
  sink: ResettableSink,
  opts: ConvertOptions,
): Promise<ConvertResult> {
  const prioritized = opts.prioritizedFiles ?? [];
  if (prioritized.length === 0 && sink.reset) {
    try {
      return { ...(await streamingPass(input, sink, opts)), missedPrioritized: [] };
    } catch (e) {
      if (!(e instanceof DuplicateName)) throw e;
      await sink.reset();
    }
  }
  const index = await indexPass(input);
  const plan = planOrder(index, prioritized, opts.allowMissingPrioritized ?? false);
  const writer = new LayerWriter(sink, opts);
  try {
    if (plan.moved.length === 0) {
      if (prioritized.length === 0) await writer.addLandmark(NO_PREFETCH_LANDMARK);
    } else {
      await emitMoved(input, writer, plan.moved);
    }
    if (prioritized.length > 0) await writer.addLandmark(PREFETCH_LANDMARK);
    const rest = new Set(plan.rest);
    let i = 0;
    for await (const e of readTarEntries(input.open())) {
      if (rest.has(i++)) await writer.add(e.header, e.body);
    }
    return { ...(await writer.finish()), missedPrioritized: plan.missed };
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

async function streamingPass(
  input: LayerInput,
  sink: ByteSink,
  opts: WriterOptions,
): Promise<WriteResult> {
  const writer = new LayerWriter(sink, opts);
  try {
    await writer.addLandmark(NO_PREFETCH_LANDMARK);
    const seen = new Set<string>();
    for await (const e of readTarEntries(input.open())) {
      if (dropped(e.clean)) continue;
      if (seen.has(e.clean)) throw new DuplicateName(e.clean);
      seen.add(e.clean);
      await writer.add(e.header, e.body);
    }
    return await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

interface IndexEntry {
  clean: string;
  type: TarHeader["type"];
  linkname: string;
}

async function indexPass(input: LayerInput): Promise<IndexEntry[]> {
  const out: IndexEntry[] = [];
  for await (const e of readTarEntries(input.open())) {
    out.push({ clean: e.clean, type: e.header.type, linkname: e.header.linkname });
  }
  return out;
}

interface Plan {
  moved: number[];
  rest: number[];
  missed: string[];
}

/** The reference's sortEntries/moveRec over input indexes. */
export function planOrder(index: IndexEntry[], prioritized: string[], allowMissing: boolean): Plan {
  const last = new Map<string, number>();
  index.forEach((e, i) => {
    if (!dropped(e.clean)) last.set(e.clean, i);
  });
  const movedSet = new Set<number>();
  const moved: number[] = [];
  const missed: string[] = [];
  const movedNames = new Set<string>();
  // Iterative, not recursive: a path may have 100,000 components (each parent is moved
  // first). Tasks run last-in first-out in the order the reference's recursion visits them.
  type Task =
    | { kind: "visit"; name: string }
    | { kind: "after"; i: number; clean: string }
    | { kind: "emit"; i: number; clean: string };
  const move = (top: string): void => {
    const pending = new Set<number>();
    const tasks: Task[] = [{ kind: "visit", name: top }];
    for (let t = tasks.pop(); t; t = tasks.pop()) {
      if (t.kind === "emit") {
        pending.delete(t.i);
        if (!movedSet.has(t.i)) {
          movedSet.add(t.i);
          moved.push(t.i);
          movedNames.add(t.clean);
        }
        continue;
      }
      if (t.kind === "after") {
        if (movedSet.has(t.i)) continue;
        // Reaching an entry again before it is moved: its hardlinks lead back to it.
        if (pending.has(t.i)) throw new FormatError(`hardlink loop at ${quoteName(t.clean)}`);
        pending.add(t.i);
        tasks.push({ kind: "emit", i: t.i, clean: t.clean });
        if (index[t.i].type === "1") tasks.push({ kind: "visit", name: index[t.i].linkname });
        continue;
      }
      const clean = cleanEntryName(t.name);
      const i = last.get(clean);
      if (clean === "") {
        if (i !== undefined && !movedSet.has(i)) {
          movedSet.add(i);
          moved.push(i);
        }
        continue;
      }
      if (i === undefined && !movedNames.has(clean)) throw new NotInLayer(t.name);
      if (i !== undefined) tasks.push({ kind: "after", i, clean });
      const slash = clean.lastIndexOf("/");
      const parent = slash < 0 ? "" : clean.slice(0, slash);
      // Parents missing from the layer are skipped (the reference fails on them).
      if (parent === "" || last.has(parent)) tasks.push({ kind: "visit", name: parent });
    }
  };
  for (const p of prioritized) {
    try {
      // Tar names are byte strings; the list is text.
      move(toByteString(p));
    } catch (e) {
      if (!(e instanceof NotInLayer)) throw e;
      if (!allowMissing)
        throw new FormatError(`prioritized file ${quoteName(p)} is not in the layer`);
      missed.push(p);
    }
  }
  const rest: number[] = [];
  for (const i of last.values()) if (!movedSet.has(i)) rest.push(i);
  rest.sort((a, b) => a - b);
  return { moved, rest, missed };
}

class NotInLayer extends Error {}

/** Copies the moved entries' bodies to a spool file, then writes them in priority order. */
async function emitMoved(input: LayerInput, writer: LayerWriter, moved: number[]): Promise<void> {
  const base = tmpdir();
  // System errors here are the spool's: input read errors arrive typed as FormatErrors.
  const spoolFailed = (e: unknown): never => {
    throw isSystemError(e) ? new SpoolError(base, e) : e;
  };
  const dir = await mkdtemp(join(base, "seekable-spool-")).catch(spoolFailed);
  try {
    const spoolPath = join(dir, "bodies");
    const spool = createWriteStream(spoolPath);
    const wanted = new Set(moved);
    const saved = new Map<number, { header: TarHeader; offset: number }>();
    let offset = 0;
    let i = 0;
    try {
      for await (const e of readTarEntries(input.open())) {
        const idx = i++;
        if (!wanted.has(idx)) continue;
        saved.set(idx, { header: e.header, offset });
        if (e.header.type === "0") offset += await copyBody(e, spool).catch(spoolFailed);
      }
      await endStream(spool).catch(spoolFailed);
    } finally {
      spool.destroy();
    }
    for (const idx of moved) {
      const s = saved.get(idx) as { header: TarHeader; offset: number };
      const size = s.header.type === "0" ? s.header.size : 0;
      const body =
        size > 0
          ? createReadStream(spoolPath, {
              start: s.offset,
              end: s.offset + size - 1,
              highWaterMark: 1 << 20,
            })
          : undefined;
      await writer.add(s.header, body);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function copyBody(e: InputEntry, out: Writable): Promise<number> {
  let n = 0;
  for await (const c of e.body) {
    n += c.length;
    await writeChunk(out, c);
  }
  return n;
}
