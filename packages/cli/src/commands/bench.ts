import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename } from "node:path";
import {
  type BenchResult,
  ContentMismatchError,
  formatBytes,
  type LinkSetting,
  markdownTable,
  runBench,
  StrategyError,
  svgChart,
} from "@seekable/bench";
import { parseCredentials } from "@seekable/registry";
import { CliError } from "../errors.js";

export interface BenchFlags {
  workload: string[];
  rtt: number[];
  bandwidth: number[];
  repeat: number;
  chart?: string;
  json?: boolean;
  creds?: string;
  plainHttp?: boolean;
  platform?: string;
}

/** `seekable bench IMAGE --workload FILE ...`: the table on stdout (or --json), --chart SVG. */
export async function benchCommand(image: string, flags: BenchFlags): Promise<void> {
  if (!/^(docker:\/\/|oci:)/.test(image))
    throw new CliError(`${image}: bench takes docker://REF or oci:DIR[:TAG]`, true);
  if (flags.workload.length === 0) throw new CliError("--workload FILE is required", true);
  const workloads = [];
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
    workloads.push({ name, paths });
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
      credentials: flags.creds ? parseCredentials(flags.creds) : undefined,
      plainHttp: flags.plainHttp,
      platform: flags.platform,
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
  const out: string[] = [];
  const b = result.imageBytes;
  out.push(
    `Image ${image}: ${formatBytes(b.original)} compressed` +
      (result.converted
        ? `, not eStargz: converted first (eStargz ${formatBytes(b.estargz)})`
        : " (eStargz)") +
      `; ${result.repeat} run(s) each, medians${result.repeat > 1 ? " (min–max)" : ""}.`,
    "",
  );
  for (const w of result.workloads)
    out.push(
      `Workload ${w.name}: ${w.files} files, ${formatBytes(w.bytes)}` +
        (w.dropped.length > 0 ? ` (${w.dropped.length} non-regular paths skipped)` : "") +
        ".",
    );
  out.push("", markdownTable(result.rows), "");
  process.stdout.write(out.join("\n"));
}
