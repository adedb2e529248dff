// A dynamically linked program of this machine (ls) and what the dynamic loader opens for it
// (ld.so, /etc/ld.so.cache, its libraries), as two layers of a usr-merged Debian tree:
// libraries below, the program above, with unrelated files between them so nothing comes
// along with a read by accident.
import { execFileSync } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import { pseudoRandom, type TarItem } from "./tar.js";

export interface DynamicProgram {
  /** The libraries ld.so loads (ldd's list: direct and indirect). */
  libs: { name: string; path: string }[];
  base: TarItem[];
  app: TarItem[];
  /** The program's path in the image. */
  program: string;
}

/** The libraries ld.so loads for `program` (ldd's list: direct and indirect), real paths. */
export function linkedLibraries(program: string): { name: string; path: string }[] {
  return execFileSync("ldd", [program], { encoding: "utf8" })
    .split("\n")
    .map((l) => /^\s*(\S+) => (\S+)/.exec(l))
    .filter((x): x is RegExpExecArray => x !== null)
    .map((x) => ({ name: x[1], path: realpathSync(x[2]) }));
}

export function dynamicProgram(): DynamicProgram {
  const libs = linkedLibraries("/bin/ls");
  const L = "usr/lib/x86_64-linux-gnu";
  const filler = (i: number): TarItem => ({
    name: `usr/share/f${i}.bin`,
    body: pseudoRandom(150_000, 40 + i),
  });
  const base: TarItem[] = [
    { name: "usr/" },
    { name: "usr/bin/" },
    { name: "usr/lib/" },
    { name: `${L}/` },
    { name: "usr/lib64/" },
    { name: "usr/share/" },
    { name: "etc/" },
    { name: "bin", type: "symlink", linkname: "usr/bin" },
    { name: "lib", type: "symlink", linkname: "usr/lib" },
    { name: "lib64", type: "symlink", linkname: "usr/lib64" },
    { name: "etc/ld.so.cache", body: readFileSync("/etc/ld.so.cache") },
    filler(0),
    {
      name: `${L}/ld-linux-x86-64.so.2`,
      body: readFileSync(realpathSync("/lib64/ld-linux-x86-64.so.2")),
      mode: 0o755,
    },
    {
      name: "usr/lib64/ld-linux-x86-64.so.2",
      type: "symlink",
      linkname: "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    },
  ];
  for (const [i, l] of libs.entries())
    base.push(filler(i + 1), { name: `${L}/${l.name}`, body: readFileSync(l.path) });
  const app: TarItem[] = [
    { name: "usr/" },
    { name: "usr/bin/" },
    { name: "usr/bin/ls", body: readFileSync(realpathSync("/bin/ls")), mode: 0o755 },
  ];
  return { libs, base, app, program: "/usr/bin/ls" };
}
