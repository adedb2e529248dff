#!/usr/bin/env node
// Builds a real three-layer image from this Debian bookworm machine's installed files, and
// records a cold-start workload on it:
//   .work/image/layer1.tar  base OS: the files of the Priority: required packages and of the
//                           dependency closure of python3.11 (libc, libssl, libffi, ...), minus
//                           docs/man/locales, with the usr-merge symlinks (bin, lib, lib64,
//                           sbin) and /etc basics (passwd, group, ld.so.cache, ...)
//   .work/image/layer2.tar  python runtime: /usr/lib/python3.11 (with its __pycache__),
//                           /usr/bin/python3*, /etc/python3.11
//   .work/image/layer3.tar  application: /app (a small python app) and its dependencies,
//                           /usr/lib/python3/dist-packages (pip, setuptools, cryptography, ...)
//   .work/image/image.json  per layer: size, diffID (sha256 of the tar), entries
//   .work/image/workload-python-json.txt
//                           the regular files `python3 -c "import json"` opens in a chroot of
//                           the three layers (strace), in first-access order, relative to the
//                           image root, symlinks resolved inside the image, deduplicated;
//                           executed programs and their ELF interpreter count as opened.
// Tars are deterministic (GNU tar, PAX, sorted names, owner 0:0, no atime/ctime/xattrs) and keep
// the installed files' mtimes, clamped to 2026-01-01 (files made here, e.g. the app's, get that
// date): as `docker build` keeps them. With every mtime 0, python finds each .pyc stale against
// its .py and opens both, which no real image makes it do.
// Cached: does nothing when the outputs exist (--force rebuilds). Needs root (chroot), strace.
//
// --node-app: the node variant instead (default out .work/image-node): the same base OS and
// python layers (built first in .work/image, then copied) and, as layer 3, a node app:
//   /usr/bin/node and the shared libraries it links (this machine's node), /app/server.js
//   (an express server) and /app/node_modules from tools/image/node-app/package-lock.json
//   (`npm ci --omit=dev --ignore-scripts`: express and a realistic tree, ~22k entries; needs
//   the npm registry once). The start measured on it: cd /app && node -e "require('express')".
//   Its image.json is written; no workload file (seekable bench --run records the start).
// Usage: node tools/image/build-image.mjs [--force] [--out DIR] [--node-app]
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
let out;
let force = false;
let nodeApp = false;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--force") force = true;
  else if (argv[i] === "--node-app") nodeApp = true;
  else if (argv[i] === "--out") out = resolve(argv[++i] ?? "");
  else if (argv[i] === "-h" || argv[i] === "--help") {
    process.stdout.write(
      `${readFileSync(fileURLToPath(import.meta.url), "utf8").split("\nimport")[0]}\n`,
    );
    process.exit(0);
  } else {
    process.stderr.write(`build-image: unknown argument ${argv[i]}\n`);
    process.exit(2);
  }
}
out ??= join(ROOT, nodeApp ? ".work/image-node" : ".work/image");
const env = { ...process.env, LC_ALL: "C" };
const log = (s) => process.stderr.write(`build-image: ${s}\n`);
const sh = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { env, maxBuffer: 1 << 30, encoding: "utf8", ...opts });

const LAYERS = [1, 2, 3].map((n) => join(out, `layer${n}.tar`));
const META = join(out, "image.json");
const WORKLOAD = join(out, "workload-python-json.txt");
mkdirSync(out, { recursive: true });

// ---- layer contents ---------------------------------------------------------------------

/** A dpkg-query -f format: the fields, tab-separated, one package a line. */
const dpkgFormat = (...fields) => `${fields.map((f) => `\${${f}}`).join("\\t")}\\n`;

/** Packages installed, with their dependency fields. */
function installedPackages() {
  const fmt = dpkgFormat(
    "db:Status-Abbrev",
    "Package",
    "binary:Package",
    "Priority",
    "Depends",
    "Pre-Depends",
    "Provides",
  );
  const pkgs = new Map();
  const provides = new Map();
  for (const line of sh("dpkg-query", ["-W", `-f=${fmt}`]).split("\n")) {
    const [status, name, binary, priority, depends, pre, prov] = line.split("\t");
    if (!status?.startsWith("ii")) continue;
    pkgs.set(name, { name, binary, priority, deps: `${depends}, ${pre}` });
    for (const p of (prov ?? "").split(",")) {
      const v = p.trim().split(/[\s:(]/)[0];
      if (v && !provides.has(v)) provides.set(v, name);
    }
  }
  return { pkgs, provides };
}

/** Required packages and the dependency closure of them and of python3.11, minus python. */
function basePackages() {
  const { pkgs, provides } = installedPackages();
  const isPython = (n) => /^(lib)?python3/.test(n);
  const find = (n) => (pkgs.has(n) ? n : provides.get(n));
  const todo = [...pkgs.values()].filter((p) => p.priority === "required").map((p) => p.name);
  todo.push("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib");
  const seen = new Set();
  while (todo.length) {
    const n = todo.pop();
    if (seen.has(n)) continue;
    seen.add(n);
    for (const clause of pkgs.get(n).deps.split(",")) {
      const alts = clause
        .split("|")
        .map((a) => a.trim().split(/[\s:(]/)[0])
        .filter(Boolean);
      const hit = alts.map(find).find(Boolean);
      if (hit && !seen.has(hit)) todo.push(hit);
    }
  }
  return [...seen]
    .filter((n) => !isPython(n))
    .sort()
    .map((n) => pkgs.get(n).binary);
}

/** `/a/b/c` with every directory symlink of the host resolved, the last component kept. */
const realCache = new Map();
function canonical(p) {
  const dir = dirname(p);
  let real = realCache.get(dir);
  if (real === undefined) {
    try {
      real = realpathSync(dir);
    } catch {
      real = null;
    }
    realCache.set(dir, real);
  }
  return real === null ? undefined : posix.join(real, posix.basename(p));
}

const EXCLUDE_BASE = [
  /^usr\/share\/(doc|man|info|locale|lintian|bug)(\/|$)/,
  /^usr\/lib\/python3(\.11)?(\/|$)/,
  /^usr\/bin\/python3/,
  /^etc\/python3/,
];
const ETC_BASICS = [
  "etc/passwd",
  "etc/group",
  "etc/nsswitch.conf",
  "etc/ld.so.cache",
  "etc/ld.so.conf",
  "etc/ld.so.conf.d",
  "etc/profile",
  "etc/bash.bashrc",
  "etc/environment",
  "etc/debian_version",
  "etc/issue",
  "etc/os-release",
  "etc/shells",
  "etc/localtime",
  "etc/timezone",
  "etc/mime.types",
  "bin",
  "sbin",
  "lib",
  "lib64",
  "usr/lib64",
];

/** Relative paths of layer 1 (files, symlinks, directories listed explicitly). */
function baseList() {
  const pkgs = basePackages();
  log(`layer 1: ${pkgs.length} packages`);
  const set = new Set();
  for (const p of sh("dpkg", ["-L", ...pkgs]).split("\n")) {
    if (!p.startsWith("/") || p === "/.") continue;
    const c = canonical(p);
    if (c) set.add(c.slice(1));
  }
  for (const p of ETC_BASICS) set.add(p);
  const out = [];
  for (const p of set) {
    if (EXCLUDE_BASE.some((re) => re.test(p))) continue;
    let st;
    try {
      st = lstatSync(`/${p}`);
    } catch {
      continue; // listed by dpkg but removed (e.g. excluded by dpkg path filters)
    }
    if (st.isDirectory()) {
      // Directories are listed with their contents only when dpkg owns the contents, except
      // the /etc basics directories, taken whole.
      if (ETC_BASICS.includes(p)) for (const f of walk(p)) out.push(f);
      out.push(p);
    } else if (st.isFile() || st.isSymbolicLink()) out.push(p);
  }
  return out;
}

/** Every entry under a host directory (relative), the directory itself included. */
function walk(rel, exclude = () => false) {
  const res = sh(
    "find",
    [rel, "-xdev", "(", "-type", "f", "-o", "-type", "l", "-o", "-type", "d", ")"],
    {
      cwd: "/",
    },
  )
    .split("\n")
    .filter(Boolean)
    .filter((p) => !exclude(p));
  return res;
}

/** Sorted, deduplicated, every parent directory present (parents sort before children). */
function withParents(paths) {
  const set = new Set();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i <= parts.length; i++) set.add(parts.slice(0, i).join("/"));
  }
  return [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

const APP_FILES = {
  "app/main.py": `#!/usr/bin/python3
"""inventory: summarises the package inventory shipped in data/ as JSON."""
import json
import sys
from pathlib import Path

from inventory.report import summarise

DATA = Path(__file__).resolve().parent / "data"


def main(argv):
    packages = json.loads((DATA / "packages.json").read_text())
    json.dump(summarise(packages, top=int(argv[1]) if len(argv) > 1 else 10), sys.stdout, indent=2)
    sys.stdout.write("\\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
`,
  "app/inventory/__init__.py": `"""Package inventory helpers."""\n`,
  "app/inventory/report.py": `"""Summaries of a package inventory."""
from collections import Counter


def summarise(packages, top=10):
    by_section = Counter(p["section"] for p in packages)
    biggest = sorted(packages, key=lambda p: p["size"], reverse=True)[:top]
    return {
        "packages": len(packages),
        "installedKiB": sum(p["size"] for p in packages),
        "sections": dict(by_section.most_common()),
        "biggest": [{"name": p["name"], "size": p["size"]} for p in biggest],
    }
`,
  "app/requirements.txt":
    "# provided by /usr/lib/python3/dist-packages (Debian packages)\ncryptography\nPyYAML\nPygments\n",
};

/** Stages the app's files (deterministic content and modes); returns the staging dir. */
function stageApp() {
  const stage = join(out, "app-stage");
  rmSync(stage, { recursive: true, force: true });
  for (const [rel, text] of Object.entries(APP_FILES)) {
    mkdirSync(dirname(join(stage, rel)), { recursive: true });
    writeFileSync(join(stage, rel), text);
    chmodSync(join(stage, rel), rel.endsWith("main.py") ? 0o755 : 0o644);
  }
  // Real data: this machine's package inventory (name, section, installed size), sorted.
  const inv = sh("dpkg-query", ["-W", `-f=${dpkgFormat("Package", "Section", "Installed-Size")}`])
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [name, section, size] = l.split("\t");
      return { name, section: section || "unknown", size: Number(size) || 0 };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  mkdirSync(join(stage, "app/data"), { recursive: true });
  writeFileSync(join(stage, "app/data/packages.json"), `${JSON.stringify(inv, null, 1)}\n`);
  chmodSync(join(stage, "app/data/packages.json"), 0o644);
  for (const d of ["app", "app/inventory", "app/data"]) chmodSync(join(stage, d), 0o755);
  return stage;
}

const TAR_COMMON = [
  "--sort=name",
  "--mtime=@1767225600",
  "--clamp-mtime",
  "--owner=0",
  "--group=0",
  "--numeric-owner",
  "--format=pax",
  "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
  "--no-acls",
  "--no-xattrs",
  "--no-selinux",
  "--no-recursion",
];

/** Writes a tar of `list` (relative to `dir`, in list order) atomically. */
function writeTar(file, dir, list) {
  const listFile = `${file}.list`;
  writeFileSync(listFile, `${list.join("\n")}\n`);
  const tmp = `${file}.tmp.${process.pid}`;
  try {
    sh("tar", ["-cf", tmp, ...TAR_COMMON, "-C", dir, "--verbatim-files-from", "-T", listFile]);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(listFile, { force: true });
  }
}

async function sha256File(file) {
  const h = createHash("sha256");
  for await (const b of createReadStream(file)) h.update(b);
  return `sha256:${h.digest("hex")}`;
}

async function buildLayers() {
  // Layer 1: base OS.
  const base = withParents(baseList());
  writeTar(LAYERS[0], "/", base);
  // Layer 2: python runtime.
  const py = [
    ...walk("usr/lib/python3.11", (p) => p.includes("/site-packages/")),
    ...sh("find", ["usr/bin", "-maxdepth", "1", "-name", "python3*"], { cwd: "/" })
      .split("\n")
      .filter(Boolean),
    ...(existsSync("/etc/python3.11") ? walk("etc/python3.11") : []),
  ];
  writeTar(LAYERS[1], "/", withParents(py));
  // Layer 3: the app and its dependencies. Files not from the distribution's packages
  // (a sandbox's own .pth hooks) are left out.
  const stage = stageApp();
  const deps = walk("usr/lib/python3/dist-packages", (p) => /\/_sandbox/.test(p));
  const app = withParents([...deps, ...Object.keys(APP_FILES), "app/data/packages.json"]);
  // Two roots: /app from the stage, the rest from the host ("app" sorts first).
  const appList = join(out, "layer3.app.list");
  const hostList = join(out, "layer3.host.list");
  writeFileSync(appList, `${app.filter((p) => /^app(\/|$)/.test(p)).join("\n")}\n`);
  writeFileSync(hostList, `${app.filter((p) => !/^app(\/|$)/.test(p)).join("\n")}\n`);
  const tmp = `${LAYERS[2]}.tmp.${process.pid}`;
  try {
    sh("tar", [
      "-cf",
      tmp,
      ...TAR_COMMON,
      "--verbatim-files-from",
      "-C",
      stage,
      "-T",
      appList,
      "-C",
      "/",
      "-T",
      hostList,
    ]);
    renameSync(tmp, LAYERS[2]);
  } finally {
    for (const f of [tmp, appList, hostList]) rmSync(f, { force: true });
    rmSync(stage, { recursive: true, force: true });
  }
  await writeMeta();
}

// ---- workload -----------------------------------------------------------------------------

/** Resolves `p` (absolute, inside the image) through symlinks inside `root`. */
function resolveIn(root, p, depth = 0) {
  if (depth > 40) return undefined;
  const parts = p.split("/").filter(Boolean);
  let cur = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === ".") continue;
    if (part === "..") {
      cur = posix.dirname(cur === "" ? "/" : cur).replace(/^\/$/, "");
      continue;
    }
    const next = `${cur}/${part}`;
    let st;
    try {
      st = lstatSync(root + next);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(root + next);
      const base = target.startsWith("/") ? target : posix.join(cur || "/", target);
      const rest = parts.slice(i + 1).join("/");
      return resolveIn(root, rest ? `${base}/${rest}` : base, depth + 1);
    }
    cur = next;
  }
  return cur || "/";
}

function interpreterOf(file) {
  const r = spawnSync("readelf", ["-l", file], { encoding: "utf8", env });
  return /Requesting program interpreter: ([^\]]+)\]/.exec(r.stdout ?? "")?.[1];
}

function recordWorkload() {
  const rootfs = join(out, "rootfs");
  rmSync(rootfs, { recursive: true, force: true });
  mkdirSync(rootfs);
  try {
    for (const f of LAYERS) sh("tar", ["-xf", f, "-C", rootfs]);
    const files = new Set(
      sh("find", [".", "-type", "f"], { cwd: rootfs })
        .split("\n")
        .filter(Boolean)
        .map((p) => p.slice(2)),
    );
    const trace = join(out, "trace.txt");
    const r = spawnSync(
      "strace",
      [
        "-f",
        "-y",
        "-e",
        "trace=%file",
        "-o",
        trace,
        "chroot",
        rootfs,
        "/usr/bin/python3",
        "-c",
        "import json",
      ],
      { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" }, encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`strace chroot python3 failed: ${r.stderr}`);
    const order = [];
    const seen = new Set();
    const add = (abs) => {
      const rel = resolveIn(rootfs, abs)?.slice(1);
      if (rel && files.has(rel) && !seen.has(rel)) {
        seen.add(rel);
        order.push(rel);
      }
    };
    let inRoot = false;
    const pending = new Map();
    for (let line of readFileSync(trace, "utf8").split("\n")) {
      const m = /^(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const [, pid, rest0] = m;
      let rest = rest0;
      if (rest.endsWith("<unfinished ...>")) {
        pending.set(pid, rest.slice(0, -"<unfinished ...>".length));
        continue;
      }
      const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
      if (resumed) {
        rest = (pending.get(pid) ?? "") + resumed[1];
        pending.delete(pid);
      }
      line = rest;
      if (/^chroot\(/.test(line) && / = 0$/.test(line)) {
        inRoot = true;
        continue;
      }
      if (!inRoot) continue;
      const ok = / = (\d+)(<[^>]*>)?$/.exec(line);
      if (!ok) continue;
      const ex = /^execve\("((?:[^"\\]|\\.)*)"/.exec(line);
      if (ex) {
        const exe = resolveIn(rootfs, ex[1]);
        if (!exe) continue;
        add(exe);
        const interp = interpreterOf(rootfs + exe);
        if (interp) add(interp);
        continue;
      }
      // open/openat/openat2/creat: the kernel's path of the opened fd (-y) is the truth.
      if (/^(open|openat|openat2|creat)\(/.test(line) && ok[2]) {
        const host = ok[2].slice(1, -1);
        if (host.startsWith(`${rootfs}/`)) add(host.slice(rootfs.length));
      }
    }
    if (order.length === 0) throw new Error(`no files in ${trace}`);
    writeFileSync(`${WORKLOAD}.tmp`, `${order.join("\n")}\n`);
    renameSync(`${WORKLOAD}.tmp`, WORKLOAD);
    log(`wrote ${WORKLOAD} (${order.length} files)`);
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}

// ---- the node app variant ---------------------------------------------------------------

const NODE_APP_DIR = join(ROOT, "tools/image/node-app");

/** `file` and the shared libraries it links (ldd), as canonical paths with their symlinks. */
function withLibraries(file) {
  const out = new Set([file.slice(1)]);
  const r = spawnSync("ldd", [file], { encoding: "utf8", env });
  for (const m of (r.stdout ?? "").matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) {
    const lib = m[1];
    // The name ld.so looks for (often a symlink) and what it points to.
    const named = canonical(lib);
    if (named) out.add(named.slice(1));
    out.add(realpathSync(lib).slice(1));
  }
  return [...out];
}

async function buildNodeVariant() {
  // Layers 1 and 2: the python image's, built (or found) in .work/image.
  const base = join(ROOT, ".work/image");
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--out", base], {
    stdio: "inherit",
  });
  if (r.status !== 0) throw new Error("building the base layers failed");
  for (const n of [0, 1]) {
    const tmp = `${LAYERS[n]}.tmp.${process.pid}`;
    sh("cp", ["--reflink=auto", join(base, `layer${n + 1}.tar`), tmp]);
    renameSync(tmp, LAYERS[n]);
  }
  // Layer 3: the node app, staged with `npm ci` from the committed lock file.
  const stage = join(out, "node-stage");
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, "app"), { recursive: true });
  for (const f of ["package.json", "package-lock.json", "server.js"])
    writeFileSync(join(stage, "app", f), readFileSync(join(NODE_APP_DIR, f)));
  log("layer 3: npm ci (express and its neighbours)");
  sh("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: join(stage, "app"),
    stdio: ["ignore", "ignore", "inherit"],
  });
  rmSync(join(stage, "app/node_modules/.package-lock.json"), { force: true });
  sh("chmod", ["-R", "u+rwX,go+rX,go-w", join(stage, "app")]);
  const app = sh("find", ["app"], { cwd: stage }).split("\n").filter(Boolean);
  const host = withParents(withLibraries("/usr/bin/node"));
  const appList = join(out, "layer3.app.list");
  const hostList = join(out, "layer3.host.list");
  writeFileSync(appList, `${withParents(app).join("\n")}\n`);
  writeFileSync(hostList, `${host.join("\n")}\n`);
  const tmp = `${LAYERS[2]}.tmp.${process.pid}`;
  try {
    sh("tar", [
      "-cf",
      tmp,
      ...TAR_COMMON,
      "--verbatim-files-from",
      "-C",
      stage,
      "-T",
      appList,
      "-C",
      "/",
      "-T",
      hostList,
    ]);
    renameSync(tmp, LAYERS[2]);
  } finally {
    for (const f of [tmp, appList, hostList]) rmSync(f, { force: true });
    rmSync(stage, { recursive: true, force: true });
  }
  await writeMeta();
}

async function writeMeta() {
  const meta = [];
  for (const f of LAYERS) {
    const entries = sh("tar", ["-tf", f]).split("\n").filter(Boolean).length;
    meta.push({ tar: f, size: statSync(f).size, diffID: await sha256File(f), entries });
    log(`wrote ${f} (${(statSync(f).size / 1e6).toFixed(1)} MB, ${entries} entries)`);
  }
  writeFileSync(META, `${JSON.stringify(meta, null, 2)}\n`);
}

const layersReady = LAYERS.every((f) => existsSync(f)) && existsSync(META);
if (nodeApp) {
  if (force || !layersReady) await buildNodeVariant();
  else log(`cached ${LAYERS.join(", ")}`);
  process.exit(0);
}
if (force || !layersReady) {
  await buildLayers();
  rmSync(WORKLOAD, { force: true });
} else log(`cached ${LAYERS.join(", ")}`);
if (force || !existsSync(WORKLOAD)) recordWorkload();
else log(`cached ${WORKLOAD}`);
