// Running child processes (the seekable CLI, the reference tool, GNU tar) from tests.
import { spawn } from "node:child_process";
import { referenceBinary, seekableCli } from "./paths.js";

export interface RunResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** Wall time in milliseconds. */
  ms: number;
}

/** Runs a command to completion; never throws for a non-zero exit (see `mustSucceed`). */
export function run(
  file: string,
  args: string[],
  opts: { cwd?: string; input?: Uint8Array; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    // A hang is killed after timeoutMs and shows up as a signal.
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      timeout: opts.timeoutMs,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.stdin.on("error", () => {}); // the child may exit without reading its input
    child.stdin.end(opts.input);
    child.on("close", (code, signal) => {
      resolve({
        command: [file, ...args]
          .map((a) => (/^[\w./:=@+-]+$/.test(a) ? a : JSON.stringify(a)))
          .join(" "),
        code,
        signal,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString("utf8"),
        ms: Date.now() - t0,
      });
    });
  });
}

/** A readable description of a finished command, for assertion messages. */
export function describeRun(r: RunResult, maxStdout = 4000): string {
  const stdout = r.stdout.toString("utf8");
  return [
    `$ ${r.command}`,
    `exit ${r.code ?? r.signal}`,
    stdout
      ? `stdout:\n${stdout.length > maxStdout ? `${stdout.slice(0, maxStdout)}…` : stdout}`
      : "",
    r.stderr ? `stderr:\n${r.stderr}` : "",
  ]
    .filter(Boolean)
    .join("\n");
}

/** Throws (with the command's output) unless it exited 0. */
export function mustSucceed(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`command failed\n${describeRun(r)}`);
  return r;
}

/** `seekable ARGS...` through the built CLI with this Node. */
export function seekable(...args: string[]): Promise<RunResult> {
  return run(process.execPath, [seekableCli(), ...args]);
}

/** `estargz-ref ARGS...`, the reference tool. */
export function reference(...args: string[]): Promise<RunResult> {
  return run(referenceBinary(), args);
}

/** Parses a command's stdout as JSON (the last non-empty line when `lastLine`). */
export function jsonOut<T>(r: RunResult, lastLine = false): T {
  const text = r.stdout.toString("utf8").trim();
  const doc = lastLine ? (text.split("\n").pop() ?? "") : text;
  try {
    return JSON.parse(doc) as T;
  } catch {
    throw new Error(`stdout is not JSON\n${describeRun(r)}`);
  }
}

/** At most `n` tasks at once (spawned processes are CPU-bound: match the cores). */
export { limiter } from "@seekable/registry";

/** Memoizes an async function by a string key (shares expensive conversions across tests). */
export function memo<A extends unknown[], T>(
  key: (...a: A) => string,
  f: (...a: A) => Promise<T>,
): (...a: A) => Promise<T> {
  const cache = new Map<string, Promise<T>>();
  return (...a: A) => {
    const k = key(...a);
    let p = cache.get(k);
    if (!p) {
      p = f(...a);
      cache.set(k, p);
    }
    return p;
  };
}

/** The `--stats` JSON line a command printed last on stderr. */
export function statsOf(stderr: string): Record<string, number> {
  return JSON.parse(stderr.trim().split("\n").pop() as string);
}
