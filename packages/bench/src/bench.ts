// The benchmark: prepare the images, then for each link × workload × repetition run the
// three strategies through the shaping proxy, checking every file against the full pull.
import { constants } from "node:fs";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Credentials } from "@seekable/registry";
import { prepareImage, viaProxy, type Workload } from "./prepare.js";
import { type ResultRow, spread } from "./report.js";
import { type LinkSetting, startShapingProxy } from "./shaping-proxy.js";
import { type RunOutput, runStrategy, STRATEGIES, type StrategyName } from "./strategies.js";

export interface BenchOptions {
  /** docker://REF or oci:DIR[:TAG] */
  image: string;
  workloads: Workload[];
  links: LinkSetting[];
  /** Runs of each strategy per workload and link (medians are reported). */
  repeat: number;
  credentials?: Credentials;
  plainHttp?: boolean;
  platform?: string;
  /** Directory for temporary files (default: the OS's). */
  tmpDir?: string;
  onProgress?: (line: string) => void;
}

export interface BenchResult {
  image: string;
  /** The image was not eStargz and was converted first. */
  converted: boolean;
  /** Compressed layer bytes: as given, eStargz, and each workload's optimized image. */
  imageBytes: { original: number; estargz: number; optimized: Record<string, number> };
  workloads: { name: string; files: number; bytes: number; dropped: string[] }[];
  links: LinkSetting[];
  repeat: number;
  rows: ResultRow[];
}

/** Contents differ between strategies: the benchmark's answer would be wrong. */
export class ContentMismatchError extends Error {
  override readonly name = "ContentMismatchError";
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

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  const progress = opts.onProgress ?? (() => {});
  const tmp = await mkdtemp(join(opts.tmpDir ?? (await scratchDir()), "seekable-bench-"));
  try {
    const prepared = await prepareImage(opts.image, opts.workloads, {
      credentials: opts.credentials,
      plainHttp: opts.plainHttp,
      platform: opts.platform,
      tmpDir: tmp,
      onNote: progress,
    });
    try {
      const proxy = await startShapingProxy({ upstream: prepared.upstream });
      try {
        const rows: ResultRow[] = [];
        for (const link of opts.links) {
          proxy.link = link;
          for (const [k, w] of prepared.workloads.entries()) {
            const refs: Record<StrategyName, typeof prepared.original> = {
              "full-pull": prepared.original,
              lazy: prepared.lazy,
              "lazy-optimized": prepared.optimized[k],
            };
            const runs = new Map<StrategyName, RunOutput[]>(STRATEGIES.map((s) => [s, []]));
            let expected: string[] | undefined;
            for (let rep = 0; rep < opts.repeat; rep++) {
              for (const s of STRATEGIES) {
                progress(
                  `${w.name} · ${link.rttMs} ms / ${link.mbit} Mbit · ${s} · run ${rep + 1}/${opts.repeat}`,
                );
                const out = await runStrategy(s, {
                  proxy,
                  ref: viaProxy(refs[s], proxy.host),
                  paths: w.paths,
                  tmpDir: tmp,
                  credentials: opts.credentials,
                  platform: opts.platform,
                });
                expected ??= out.digests; // the full pull's extracted files come first
                for (const [i, d] of out.digests.entries()) {
                  if (d !== expected[i])
                    throw new ContentMismatchError(
                      `${w.paths[i]}: ${s} read ${d}, the full pull's extracted file has ${expected[i]}`,
                    );
                }
                runs.get(s)?.push(out);
              }
            }
            const full = runs.get("full-pull") as RunOutput[];
            const fullTime = spread(full.map((r) => r.seconds)).median;
            const fullBytes = spread(full.map((r) => r.bytesFetched)).median;
            for (const s of STRATEGIES) {
              const rs = runs.get(s) as RunOutput[];
              const seconds = spread(rs.map((r) => r.seconds));
              const bytesFetched = spread(rs.map((r) => r.bytesFetched));
              rows.push({
                workload: w.name,
                link,
                strategy: s,
                runs: rs.map(({ digests: _d, ...f }) => f),
                seconds,
                bytesFetched,
                requests: spread(rs.map((r) => r.requests)),
                speedup: fullTime / seconds.median,
                bytesRatio: bytesFetched.median / fullBytes,
                verified: true,
              });
            }
          }
        }
        return {
          image: opts.image,
          converted: prepared.converted,
          imageBytes: {
            original: prepared.sizes.original,
            estargz: prepared.sizes.lazy,
            optimized: Object.fromEntries(
              prepared.workloads.map((w, k) => [w.name, prepared.sizes.optimized[k]]),
            ),
          },
          workloads: prepared.workloads.map((w) => ({
            name: w.name,
            files: w.paths.length,
            bytes: w.bytes,
            dropped: w.dropped,
          })),
          links: opts.links,
          repeat: opts.repeat,
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
