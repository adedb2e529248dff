import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type BenchResult,
  ContentMismatchError,
  formatBytes,
  isStrategyName,
  type LinkSetting,
  markdownTable,
  runBench,
  StrategyError,
  type StrategyName,
  svgChart,
  type WorkloadSpec,
} from "@seekable/bench";
import { CliError } from "../errors.js";
import { credsFlag } from "../target.js";

export interface BenchFlags {
  workload: string[];
  run: string[];
  rtt: number[];
  bandwidth: number[];
  repeat: number;
  chart?: string;
  json?: boolean;
  creds?: string;
  plainHttp?: boolean;
  platform?: string;
  strategies?: string;
  referenceStore?: string;
  asIs?: boolean;
}

/** This CLI, to start `seekable mount` processes with (the same build as this command). */
const SELF = {
  file: process.execPath,
  args: [fileURLToPath(new URL("../main.js", import.meta.url))],
};

/** `seekable bench IMAGE --workload FILE ...`: the table on stdout (or --json), --chart SVG. */
export async function benchCommand(image: string, flags: BenchFlags): Promise<void> {
  if (!/^(docker:\/\/|oci:)/.test(image))
    throw new CliError(`${image}: bench takes docker://REF or oci:DIR[:TAG]`, true);
  if (flags.workload.length === 0 && flags.run.length === 0) {
    throw new CliError("--workload FILE or --run CMD is required", true);
  }
  const workloads: WorkloadSpec[] = [];
  const names = new Set<string>();
  for (const file of flags.workload) {
    const text = await readFile(file, "utf8");
    const paths = text
      .split("\n")
      .map((l) => l.replace(/\r$/, "").trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    if (paths.length === 0) throw new CliError(`${file}: the workload lists no path`, true);
    let name = basename(file)
      .replace(/\.[^.]*$/, "")
      .replace(/^workload-/, "");
    while (names.has(name)) name = `${name}'`;
    names.add(name);
    workloads.push({ name, paths, profileFile: resolve(file) });
  }
  for (const [i, command] of flags.run.entries()) {
    workloads.push({ name: `run${i + 1}`, command });
  }
  let strategies: StrategyName[] | undefined;
  if (flags.strategies !== undefined) {
    strategies = [];
    for (const s of flags.strategies.split(",").map((x) => x.trim())) {
      if (!isStrategyName(s))
        throw new CliError(
          `--strategies: unknown strategy ${JSON.stringify(s)} (full-pull, cold-mount, cold-mount-profile, reference-store, batched-list)`,
          true,
        );
      if (!strategies.includes(s)) strategies.push(s);
    }
    if (strategies.length === 0) throw new CliError("--strategies: none given", true);
  }
  const rtts = flags.rtt.length > 0 ? flags.rtt : [50];
  const bandwidths = flags.bandwidth.length > 0 ? flags.bandwidth : [100];
  const links: LinkSetting[] = [];
  for (const rttMs of rtts) for (const mbit of bandwidths) links.push({ rttMs, mbit });
  const tty = process.stderr.isTTY;
  let result: BenchResult;
  try {
    result = await runBench({
      image,
      workloads,
      links,
      repeat: flags.repeat,
      strategies,
      seekable: SELF,
      referenceStore: flags.referenceStore ? resolve(flags.referenceStore) : undefined,
      creds: flags.creds,
      credentials: flags.creds ? credsFlag(flags.creds) : undefined,
      plainHttp: flags.plainHttp,
      platform: flags.platform,
      asIs: flags.asIs,
      // Progress only on a terminal; the report says whether the image was converted.
      onProgress: tty ? (line) => process.stderr.write(`seekable: ${line}\n`) : undefined,
    });
  } catch (e) {
    if (e instanceof StrategyError || e instanceof ContentMismatchError)
      throw new CliError(`verification failed: ${e.message}`);
    throw e;
  }
  if (flags.chart) {
    const tmp = `${flags.chart}.tmp-${process.pid}`;
    try {
      await writeFile(tmp, svgChart(result.rows));
      await rename(tmp, flags.chart);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  process.stdout.write(present(image, result, flags.asIs));
}

/** The human report: image, workloads, the table, what could not run. */
function present(image: string, result: BenchResult, asIs?: boolean): string {
  const out: string[] = [];
  const b = result.imageBytes;
  out.push(
    `Image ${image}: ${formatBytes(b.original)} compressed` +
      (result.converted
        ? `, not eStargz: converted first (eStargz ${formatBytes(b.estargz)})`
        : asIs
          ? " (as it is: plain gzip layers through their indexes)"
          : " (eStargz)") +
      `; ${result.repeat} run(s) each, medians${result.repeat > 1 ? " (min–max)" : ""}.`,
    "Each run starts cold: a new mount process with an empty cache, no open connection.",
    "",
  );
  for (const w of result.workloads)
    out.push(
      `Workload ${w.name}: ` +
        (w.command !== undefined
          ? `${JSON.stringify(w.command)} (opens ${w.files} files, ${formatBytes(w.bytes)})`
          : `${w.files} files read one after another, ${formatBytes(w.bytes)}`) +
        (w.dropped.length > 0 ? ` (${w.dropped.length} non-regular paths skipped)` : "") +
        `; lower bound ${formatBytes(w.lowerBound)} (per layer touched: TOC and footer, plus the files' gzip members).`,
    );
  if (result.strategies.includes("reference-store"))
    out.push("The reference store runs with background fetch and prefetch off.");
  out.push("", markdownTable(result.rows, result.unavailable), "");
  return out.join("\n");
}
