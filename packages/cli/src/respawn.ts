import { spawn } from "node:child_process";

/**
 * `convert` runs in a child Node with a 1 MiB young generation: the converter allocates
 * many short-lived buffers, and V8's default semi-spaces alone would cost ~30 MiB of the
 * 256 MiB bound on peak memory. Other commands run in this process.
 * The flag cannot be changed at run time, hence the child.
 */
function respawnForConvert(): boolean {
  const flag = "--max-semi-space-size=1";
  if (process.argv[2] !== "convert" || process.env.SEEKABLE_CHILD === "1") return false;
  if (process.execArgv.some((a) => a.startsWith("--max-semi-space-size"))) return false;
  const child = spawn(process.execPath, [flag, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, SEEKABLE_CHILD: "1" },
  });
  // A terminal's Ctrl-C reaches the whole process group, the child included; signals sent
  // to this process alone are passed on so the child can remove its temporary output.
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  process.on("SIGTERM", forward("SIGTERM"));
  process.on("SIGHUP", forward("SIGHUP"));
  process.on("SIGINT", () => {});
  child.on("error", (e) => {
    process.stderr.write(`seekable: cannot start the converter: ${e.message}\n`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : 143)));
  return true;
}

export const respawned = respawnForConvert();
