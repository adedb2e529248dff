// The benchmark: prepare the image (eStargz), record --run workloads on a mount of it, then
// for each link × workload × repetition run every strategy through the shaping proxy,
// checking every workload file against the full pull's extracted image.
import { constants } from "node:fs";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SeekableError } from "@seekable/format";
import type { Credentials } from "@seekable/registry";
import { formatReference } from "@seekable/registry";
import { prepareImage, viaProxy } from "./prepare.js";
import { mountHasPrefetch, type SeekableCommand } from "./processes.js";
import { recordStart } from "./record.js";
import { median, physicalLimit, type ResultRow, spread } from "./report.js";
import { formatLink, type LinkSetting, startShapingProxy } from "./shaping-proxy.js";
import {
  DEFAULT_STRATEGIES,
  type RunnableWorkload,
  type RunOutput,
  runStrategy,
  STRATEGIES,
  STRATEGY_LABELS,
  type StrategyName,
} from "./strategies.js";

/** A workload as given: a list of paths (`--workload FILE`) or a command (`--run CMD`). */
export interface WorkloadSpec {
  name: string;
  /** Regular files in access order (a path-list workload). */
  paths?: string[];
  /** The file the paths came from: the profile given to `mount --prefetch`. */
  profileFile?: string;
  /** A command started in a chroot of the image (recorded first with `mount --record`). */
  command?: string;
}

export interface BenchOptions {
  /** docker://REF or oci:DIR[:TAG] */
  image: string;
  workloads: WorkloadSpec[];
  links: LinkSetting[];
  /** Runs of each strategy per workload and link (medians are reported). */
  repeat: number;
  /** Strategies to run, in report order (default: DEFAULT_STRATEGIES, + reference-store
   *  when `referenceStore` is given). */
  strategies?: StrategyName[];
  /** How to start the seekable CLI (`file ...args mount ...`): mount strategies, --run. */
  seekable?: SeekableCommand;
  /** The stargz-store binary (tools/reference-store) for the reference-store strategy. */
  referenceStore?: string;
  credentials?: Credentials;
  /** `--creds USER:PASS` as given, for the mount processes. */
  creds?: string;
  plainHttp?: boolean;
  platform?: string;
  /** Bench the image as it is: plain gzip layers are not converted (read through their indexes). */
  asIs?: boolean;
  /** Directory for temporary files (default: /dev/shm when writable, else the OS's). */
  tmpDir?: string;
  onProgress?: (line: string) => void;
}

export interface BenchResult {
  image: string;
  /** The image was not eStargz and was converted first. */
  converted: boolean;
  /** Compressed layer bytes: as given, and eStargz. */
  imageBytes: { original: number; estargz: number };
  workloads: {
    name: string;
    files: number;
    bytes: number;
    dropped: string[];
    command?: string;
    /** See CheckedWorkload.lowerBound. */
    lowerBound: number;
  }[];
  links: LinkSetting[];
  repeat: number;
  /** Strategies run, in report order. */
  strategies: StrategyName[];
  /** Strategies asked for that could not run here, and why. */
  unavailable: { strategy: StrategyName; reason: string }[];
  rows: ResultRow[];
}

/** Contents differ between strategies: the benchmark's answer would be wrong. */
export class ContentMismatchError extends SeekableError {
  override readonly name = "ContentMismatchError";
  constructor(message: string) {
    super(message, "verification");
  }
}

/**
 * Full pulls extract into memory (/dev/shm) when there is one: disk write-back made their
 * times vary by 13% between runs; tmpfs also makes the full pull as fast as it can be.
 */
async function scratchDir(): Promise<string> {
  try {
    await access("/dev/shm", constants.W_OK);
    return "/dev/shm";
  } catch {
    return tmpdir();
  }
}

/** Which strategies can run, and why the others cannot. */
async function availability(
  wanted: StrategyName[],
  opts: BenchOptions,
): Promise<{ run: StrategyName[]; unavailable: BenchResult["unavailable"] }> {
  const run: StrategyName[] = [];
  const unavailable: BenchResult["unavailable"] = [];
  const hasPrefetch = opts.seekable ? await mountHasPrefetch(opts.seekable) : false;
  for (const s of wanted) {
    let reason: string | undefined;
    if ((s === "cold-mount" || s === "cold-mount-profile") && !opts.seekable)
      reason = "no seekable command to mount with";
    else if (s === "cold-mount-profile" && !hasPrefetch)
      reason = "this seekable's `mount` has no --prefetch option yet";
    else if (s === "reference-store" && !opts.referenceStore)
      reason = "no stargz-store binary (build tools/reference-store, pass --reference-store)";
    if (reason) unavailable.push({ strategy: s, reason });
    else run.push(s);
  }
  return { run, unavailable };
}

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  const progress = opts.onProgress ?? (() => {});
  const wanted =
    opts.strategies ??
    (opts.referenceStore
      ? [...DEFAULT_STRATEGIES, "reference-store" as const]
      : DEFAULT_STRATEGIES);
  const order = STRATEGIES.filter((s) => wanted.includes(s));
  const { run: strategies, unavailable } = await availability(order, opts);
  if (opts.workloads.some((w) => w.command !== undefined) && !opts.seekable)
    throw new SeekableError("--run needs a seekable command to mount the image with", "usage");
  const tmp = await mkdtemp(join(opts.tmpDir ?? (await scratchDir()), "seekable-bench-"));
  try {
    const prepared = await prepareImage(opts.image, {
      credentials: opts.credentials,
      plainHttp: opts.plainHttp,
      platform: opts.platform,
      tmpDir: tmp,
      onNote: progress,
      asIs: opts.asIs,
    });
    try {
      // --run workloads: the command's start recorded on a mount of the eStargz image.
      const given: (WorkloadSpec & { paths: string[]; profile: string })[] = [];
      for (const [i, w] of opts.workloads.entries()) {
        if (w.command !== undefined) {
          progress(`recording ${w.name}: ${w.command}`);
          const rec = await recordStart(
            opts.seekable as SeekableCommand,
            `docker://${formatReference(prepared.lazy)}`,
            w.command,
            { dir: join(tmp, `record-${i + 1}`), creds: opts.creds, platform: opts.platform },
          );
          if (rec.paths.length === 0)
            throw new SeekableError(`--run ${JSON.stringify(w.command)}: opened no file`, "input");
          given.push({ ...w, paths: rec.paths, profile: rec.profile });
        } else {
          if (!w.paths || !w.profileFile)
            throw new SeekableError(`workload ${w.name}: no paths`, "input");
          given.push({ ...w, paths: w.paths, profile: w.profileFile });
        }
      }
      const checked = await prepared.checkWorkloads(given);
      const workloads: RunnableWorkload[] = checked.map((c, k) => ({
        name: c.name,
        paths: c.paths,
        command: given[k].command,
        profile: given[k].profile,
      }));
      const proxy = await startShapingProxy({ upstream: prepared.upstream });
      try {
        const rows: ResultRow[] = [];
        for (const link of opts.links) {
          proxy.link = link;
          for (const [k, w] of workloads.entries()) {
            const runs = new Map<StrategyName, RunOutput[]>(strategies.map((s) => [s, []]));
            let expected: { from: StrategyName; digests: string[] } | undefined;
            for (let rep = 0; rep < opts.repeat; rep++) {
              for (const s of strategies) {
                progress(
                  `${w.name} · ${formatLink(link)} · ${STRATEGY_LABELS[s]} · run ${rep + 1}/${opts.repeat}`,
                );
                const out = await runStrategy(s, {
                  proxy,
                  ref: viaProxy(s === "full-pull" ? prepared.original : prepared.lazy, proxy.host),
                  workload: w,
                  tmpDir: tmp,
                  credentials: opts.credentials,
                  creds: opts.creds,
                  platform: opts.platform,
                  seekable: opts.seekable,
                  referenceStore: opts.referenceStore,
                  layers: prepared.lazyLayers,
                });
                // The full pull's extracted files come first (when it runs).
                expected ??= { from: s, digests: out.digests };
                for (const [i, d] of out.digests.entries()) {
                  if (d !== expected.digests[i])
                    throw new ContentMismatchError(
                      `${w.paths[i]}: ${s} read ${d}, ${expected.from} has ${expected.digests[i]}`,
                    );
                }
                runs.get(s)?.push(out);
              }
            }
            const full = runs.get("full-pull");
            const fullTime = full ? spread(full.map((r) => r.seconds)).median : Number.NaN;
            const fullBytes = full ? spread(full.map((r) => r.bytesFetched)).median : Number.NaN;
            const warm = full?.flatMap((r) => (r.warmSeconds === undefined ? [] : [r.warmSeconds]));
            const limit =
              warm && warm.length > 0
                ? physicalLimit(median(warm), checked[k].lowerBound, link)
                : Number.NaN;
            for (const s of strategies) {
              const rs = runs.get(s) as RunOutput[];
              const seconds = spread(rs.map((r) => r.seconds));
              const bytesFetched = spread(rs.map((r) => r.bytesFetched));
              const ready = rs.map((r) => r.readySeconds).filter((x) => x !== undefined);
              rows.push({
                workload: w.name,
                link,
                strategy: s,
                label: STRATEGY_LABELS[s],
                runs: rs.map(({ digests: _d, warmSeconds: _w, ...f }) => f),
                seconds,
                readySeconds: ready.length > 0 ? spread(ready) : undefined,
                bytesFetched,
                requests: spread(rs.map((r) => r.requests)),
                speedup: fullTime / seconds.median,
                bytesRatio: bytesFetched.median / fullBytes,
                boundRatio: bytesFetched.median / checked[k].lowerBound,
                limitRatio: seconds.median / limit,
                verified: true,
              });
            }
          }
        }
        return {
          image: opts.image,
          converted: prepared.converted,
          imageBytes: { original: prepared.sizes.original, estargz: prepared.sizes.lazy },
          workloads: checked.map((w, k) => ({
            name: w.name,
            files: w.paths.length,
            bytes: w.bytes,
            dropped: w.dropped,
            command: given[k].command,
            lowerBound: w.lowerBound,
          })),
          links: opts.links,
          repeat: opts.repeat,
          strategies,
          unavailable,
          rows,
        };
      } finally {
        await proxy.close();
      }
    } finally {
      await prepared.close();
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
