import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
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
import { mountTarget } from "@seekable/mount";
import { parseCredentials } from "@seekable/registry";
import { CliError } from "../errors.js";
import { openSession } from "../target.js";

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
}

/** `seekable bench IMAGE --workload FILE ...`: the table on stdout (or --json), --chart SVG. */
export async function benchCommand(image: string, flags: BenchFlags): Promise<void> {
  if (!/^(docker:\/\/|oci:)/.test(image))
    throw new CliError(`${image}: bench takes docker://REF or oci:DIR[:TAG]`, true);
  if (flags.workload.length === 0 && flags.run.length === 0) {
    throw new CliError("--workload FILE or --run CMD is required", true);
  }
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
  for (const [i, cmd] of flags.run.entries()) {
    const paths = await recordWorkload(image, cmd, flags);
    if (paths.length === 0)
      throw new CliError(`--run ${JSON.stringify(cmd)}: opened no file`, true);
    workloads.push({ name: `run${i + 1}`, paths });
    process.stderr.write(`seekable: run${i + 1} = ${cmd} (${paths.length} files opened)\n`);
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

/**
 * A command's start-up workload: the image is mounted (cold, no disk cache), the command
 * runs in a chroot of it, and the files it opened are the workload, in first-access order.
 */
async function recordWorkload(image: string, cmd: string, flags: BenchFlags): Promise<string[]> {
  if (!image.startsWith("docker://")) {
    throw new CliError(`--run needs a docker:// image to mount (got ${image})`, true);
  }
  const dir = await mkdtemp(join(tmpdir(), "seekable-bench-run-"));
  const root = join(dir, "root");
  const record = join(dir, "record.txt");
  await mkdir(root);
  const session = await openSession(image, {
    cache: false,
    creds: flags.creds,
    plainHttp: flags.plainHttp,
    platform: flags.platform,
  });
  try {
    const mounted = await mountTarget(session.target, root, {
      record,
      log: (line) => process.stderr.write(`seekable: mount: ${line}\n`),
    });
    // Programs expect /dev and /proc: bind them where the image has the directories.
    const binds: string[] = [];
    let code: number | null;
    try {
      for (const [d, args] of [
        ["dev", ["--rbind", "/dev"]],
        ["proc", ["-t", "proc", "proc"]],
      ] as const) {
        const target = join(root, d);
        if (!(await stat(target).catch(() => undefined))?.isDirectory()) continue;
        if ((await run("mount", [...args, target])) === 0) binds.unshift(target);
      }
      code = await run("chroot", [root, "/bin/sh", "-c", cmd], ["ignore", "ignore", "inherit"]);
    } finally {
      for (const b of binds) await run("umount", ["-l", b]);
      await mounted.unmount();
    }
    if (code !== 0) throw new CliError(`--run ${JSON.stringify(cmd)}: exited with ${code}`, true);
    return (await readFile(record, "utf8")).split("\n").filter((l) => l !== "");
  } finally {
    await session.finish();
    await rm(dir, { recursive: true, force: true });
  }
}

function run(
  file: string,
  args: readonly string[],
  stdio: ("ignore" | "inherit")[] = ["ignore", "ignore", "ignore"],
): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], { stdio });
    child.on("error", reject);
    child.on("exit", (c) => resolve(c));
  });
}
