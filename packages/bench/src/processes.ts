// The lazy file systems a start is measured through, each a separate process as a user
// would run it: `seekable mount REF DIR [...]` (the CLI, so every mount feature that lands
// in it is measured as it is), and the reference lazy store (stargz-store, from
// tools/reference-store) with the image's layers stacked by overlayfs.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { SeekableError } from "@seekable/format";
import { mustRun, runProcess } from "./rootfs.js";

/** How to start the seekable CLI: `file ...args mount ...`. */
export interface SeekableCommand {
  file: string;
  args: string[];
}

/** The reader statistics `seekable mount --stats` prints at exit. */
export interface MountStats {
  requests: number;
  bytesFetched: number;
  bytesServedFromCache?: number;
  [k: string]: unknown;
}

export interface RunningProcess {
  /** performance.now() when the mount answered (ready to serve). */
  readyAt: number;
  /** Stops the process cleanly (SIGTERM), killing it and detaching the mount on a hang. */
  stop(): Promise<string>;
  /** The last line the process wrote on stderr (its latest complaint), or "". */
  lastError(): string;
}

const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

/**
 * Spawns `file args` and resolves once a line of its stdout satisfies `ready`. `stop()`
 * sends SIGTERM and resolves with the process's stderr once it exited 0; on a hang it is
 * killed and `dir` detached (`fusermount -u -z`), and stop() rejects.
 */
function startUntilReady(
  what: string,
  file: string,
  args: string[],
  dir: string,
  ready: (line: string) => boolean,
): Promise<RunningProcess> {
  const child: ChildProcess = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err = (err + d).slice(-64_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  const lastLine = (s: string) => s.trim().split("\n").slice(-1)[0] ?? "";
  const detach = async () => {
    child.kill("SIGKILL");
    await runProcess("fusermount", ["-u", "-z", dir]).catch(() => undefined);
  };
  const stop = async (): Promise<string> => {
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      exited,
      new Promise<undefined>((res) => {
        timer = setTimeout(() => res(undefined), STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!r) {
      await detach();
      throw new SeekableError(`${what} did not stop in ${STOP_TIMEOUT_MS / 1000} s`, "system");
    }
    if (r.code !== 0)
      throw new SeekableError(`${what} exited ${r.code ?? r.signal}: ${lastLine(err)}`, "system");
    return err;
  };
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      void detach();
      reject(
        new SeekableError(
          `${what} was not ready in ${READY_TIMEOUT_MS / 1000} s: ${lastLine(err)}`,
          "system",
        ),
      );
    }, READY_TIMEOUT_MS);
    const onExit = ({ code, signal }: { code: number | null; signal: NodeJS.Signals | null }) => {
      clearTimeout(timer);
      reject(
        new SeekableError(
          `${what} exited ${code ?? signal} before it was ready: ${lastLine(err)}`,
          "system",
        ),
      );
    };
    void exited.then(onExit);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new SeekableError(`${what}: ${e.message}`, "system"));
    });
    child.stdout?.setEncoding("utf8").on("data", function onData(d: string) {
      out += d;
      const lines = out.split("\n");
      if (!lines.slice(0, -1).some(ready)) return;
      const readyAt = performance.now();
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stdout?.resume();
      const lastError = () =>
        err
          .trim()
          .split("\n")
          .reverse()
          .find((l) => l !== "" && !l.startsWith("{")) ?? "";
      resolve({ readyAt, stop, lastError });
    });
  });
}

/** The JSON statistics line (`--stats`) in a finished mount's stderr, if any. */
export function parseMountStats(stderr: string): MountStats | undefined {
  const line = stderr
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{") && l.includes('"requests"'));
  if (!line) return undefined;
  try {
    return JSON.parse(line) as MountStats;
  } catch {
    return undefined;
  }
}

/** `seekable mount REF DIR --json --stats ...extra`, ready once it printed its JSON line. */
export async function startSeekableMount(
  seekable: SeekableCommand,
  ref: string,
  dir: string,
  extra: string[],
): Promise<RunningProcess> {
  await mkdir(dir, { recursive: true });
  return startUntilReady(
    "seekable mount",
    seekable.file,
    [...seekable.args, "mount", ref, dir, "--json", "--stats", ...extra],
    dir,
    (l) => l.startsWith("{") && l.includes('"mounted"'),
  );
}

/** Whether this seekable's `mount` takes `--prefetch` (the profile strategy needs it). */
export async function mountHasPrefetch(seekable: SeekableCommand): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(seekable.file, [...seekable.args, "mount", "--help"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.on("error", () => resolve(false));
    child.on("close", () => resolve(/--prefetch\b/.test(out)));
  });
}

/** The directory name stargz-store serves a reference under: standard base64, no '/'. */
export function storeRefName(candidates: string[]): string | undefined {
  for (const c of candidates) {
    const b = Buffer.from(c).toString("base64");
    if (!b.includes("/")) return b;
  }
  return undefined;
}

/** An overlayfs lowerdir entry: ':' ',' and '\' escaped. */
const overlayPath = (p: string) => p.replace(/([\\:,])/g, "\\$1");

export interface ReferenceStoreRoot {
  /** performance.now() when the overlay of the layers was mounted. */
  readyAt: number;
  /** The merged image (overlay of every layer's diff directory). */
  root: string;
  /** Unmounts the overlay and stops the store. */
  stop(): Promise<void>;
}

/**
 * Starts stargz-store on `dir/store` (state in `dir/state`: a cold start), then mounts an
 * overlay of the image's layers (`layers` bottom first, `refName` the store's directory
 * for the image) on `dir/root`. Every layer's TOC is fetched when its diff directory is
 * first looked up, as podman/CRI-O would do.
 */
export async function startReferenceStore(
  bin: string,
  dir: string,
  refName: string,
  layers: string[],
): Promise<ReferenceStoreRoot> {
  const mnt = join(dir, "store");
  const state = join(dir, "state");
  const root = join(dir, "root");
  for (const d of [mnt, state, root]) await mkdir(d, { recursive: true });
  const store = await startUntilReady(
    "stargz-store",
    bin,
    ["-root", state, mnt],
    mnt,
    (l) => l.trim() === "ready",
  );
  try {
    const lower = [...layers]
      .reverse()
      .map((d) => overlayPath(join(mnt, refName, d, "diff")))
      .join(":");
    await mustRun("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${lower}`, root]);
  } catch (e) {
    await store.stop().catch(() => undefined);
    throw e;
  }
  return {
    // Ready when the overlay is up: the store has looked up every layer (TOCs fetched).
    readyAt: performance.now(),
    root,
    async stop() {
      await runProcess("umount", ["-l", root]);
      await store.stop();
    },
  };
}
