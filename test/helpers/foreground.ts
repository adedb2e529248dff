// A foreground CLI process (`seekable mount`, `seekable store`) that tests start, wait for,
// and stop: up when its first stdout line arrives, stopped with SIGTERM.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { seekableCli } from "./paths.js";

export interface Foreground {
  proc: ChildProcess;
  /** stdout up to the line that said it is up. */
  stdout: string;
  stderr(): string;
  exited: Promise<number | null>;
  /** SIGTERM, then the exit code (fails if it takes more than 20 s). */
  stop(): Promise<number | null>;
}

/**
 * Starts `seekable ...args`; fails if it exits or says nothing on stdout within 20 s.
 * `onSpawn` sees the process at once (to clean up after a start that never came up).
 */
export function startForeground(
  what: string,
  args: string[],
  onSpawn?: (proc: ChildProcess) => void,
): Promise<Foreground> {
  const proc = spawn(process.execPath, [seekableCli(), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  onSpawn?.(proc);
  let out = "";
  let err = "";
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${what} did not come up in 20 s: ${err}`));
    }, 20_000);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${err}`));
    });
    proc.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (!out.includes("\n")) return;
      clearTimeout(timer);
      resolve({
        proc,
        stdout: out,
        stderr: () => err,
        exited,
        stop: async () => {
          proc.kill("SIGTERM");
          return Promise.race([
            exited,
            new Promise<never>((_, rej) =>
              setTimeout(() => rej(new Error(`${what} did not exit in 20 s`)), 20_000),
            ),
          ]);
        },
      });
    });
  });
}

/** Detaches a FUSE mount a killed test process left at `mnt` (nothing when none is there). */
export function forceUnmount(mnt: string): void {
  try {
    execFileSync("fusermount", ["-u", "-z", mnt], { stdio: "ignore" });
  } catch {
    // not mounted
  }
}
