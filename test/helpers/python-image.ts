// A small real python image from this machine's Debian python3 (no debootstrap: fast enough for
// CI), as three usr-merged layers: a base (busybox, libc and what python3 links, ld.so and its
// cache), python (the interpreter and its standard library with its compiled modules) and a
// small app layer. `python3 -c "import json"` runs in it.
import { lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { basename, join } from "node:path";
import { linkedLibraries } from "./dynamic-program.js";
import type { TarItem } from "./tar.js";

const PYTHON = "/usr/bin/python3";
const L = "usr/lib/x86_64-linux-gnu";

/** Items of a host tree under `prefix` (no leading /): dirs, files, symlinks as they are. */
function tree(host: string, skip: (path: string) => boolean): TarItem[] {
  const items: TarItem[] = [];
  const walk = (path: string) => {
    const st = lstatSync(path);
    const name = path.slice(1);
    if (st.isSymbolicLink()) items.push({ name, type: "symlink", linkname: readlinkSync(path) });
    else if (st.isDirectory()) {
      items.push({ name: `${name}/`, mode: st.mode & 0o7777 });
      for (const e of readdirSync(path).sort()) if (!skip(join(path, e))) walk(join(path, e));
    } else if (st.isFile()) items.push({ name, body: readFileSync(path), mode: st.mode & 0o7777 });
  };
  walk(host);
  return items;
}

export interface PythonImage {
  base: TarItem[];
  python: TarItem[];
  app: TarItem[];
}

export function pythonImage(): PythonImage {
  const version = basename(realpathSync(PYTHON)); // python3.11
  const libs = linkedLibraries(PYTHON);
  const base: TarItem[] = [
    { name: "usr/" },
    { name: "usr/bin/" },
    { name: "usr/lib/" },
    { name: `${L}/` },
    { name: "usr/lib64/" },
    { name: "bin", type: "symlink", linkname: "usr/bin" },
    { name: "lib", type: "symlink", linkname: "usr/lib" },
    { name: "lib64", type: "symlink", linkname: "usr/lib64" },
    { name: "etc/" },
    { name: "etc/ld.so.cache", body: readFileSync("/etc/ld.so.cache") },
    { name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\n" },
    { name: "etc/group", body: "root:x:0:\n" },
    { name: "dev/" },
    { name: "proc/" },
    { name: "sys/" },
    { name: "root/", mode: 0o700 },
    { name: "tmp/", mode: 0o1777 },
    { name: "usr/bin/busybox", body: readFileSync("/bin/busybox"), mode: 0o755 },
    { name: "usr/bin/sh", type: "symlink", linkname: "busybox" },
    { name: "usr/bin/cat", type: "symlink", linkname: "busybox" },
    {
      name: `${L}/ld-linux-x86-64.so.2`,
      body: readFileSync("/lib64/ld-linux-x86-64.so.2"),
      mode: 0o755,
    },
    {
      name: "usr/lib64/ld-linux-x86-64.so.2",
      type: "symlink",
      linkname: `../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`,
    },
    ...libs.map((l) => ({ name: `${L}/${l.name}`, body: readFileSync(l.path), mode: 0o644 })),
  ];
  const python: TarItem[] = [
    { name: "usr/" },
    { name: "usr/bin/" },
    { name: `usr/bin/${version}`, body: readFileSync(PYTHON), mode: 0o755 },
    { name: "usr/bin/python3", type: "symlink", linkname: version },
    { name: "usr/lib/" },
    ...tree(`/usr/lib/${version}`, (p) =>
      /\/(test|site-packages|dist-packages|idlelib|tkinter|ensurepip)$/.test(p),
    ),
  ];
  const app: TarItem[] = [
    { name: "app/" },
    { name: "app/main.py", body: "import json\nprint(json.dumps({'ok': True}))\n" },
  ];
  return { base, python, app };
}
