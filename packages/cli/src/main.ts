#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { errorReport, exitCodeOf } from "./errors.js";
import {
  BLOB_HELP,
  hostOptions,
  intArg,
  layerStoreOptions,
  numberList,
  readingOptions,
  registryOptions,
  secondsArg,
} from "./options.js";
import { installSignalCleanup } from "./output.js";
import { respawned } from "./respawn.js";
import { printTiming } from "./timing.js";

performance.mark("cli: main module loaded");

/** The input the running command works on: error lines name it. */
let currentInput: string | undefined;
function subject(input: string): string {
  currentInput = input === "-" ? "stdin" : input;
  return input;
}

/** The version of the installed @seekable/cli package. */
function cliVersion(): string {
  const pkg = new URL("../package.json", import.meta.url);
  return (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version;
}

const program = new Command("seekable")
  .description("Convert container image layers to eStargz and read them lazily")
  .version(cliVersion(), "-V, --version", "print the version")
  .option("--debug", "print stack traces on errors")
  .exitOverride()
  .configureOutput({ outputError: (s, write) => write(s.replace(/^error: /, "seekable: ")) });

registryOptions(program.command("convert"))
  .description(
    "convert a tar or tar.gz layer (file or - for stdin) to eStargz (file or - for stdout), or a whole image",
  )
  .argument(
    "<in>",
    "input layer: .tar or .tar.gz (sniffed), - for stdin; or an image: docker://REF, oci:DIR[:TAG], docker-archive:FILE",
  )
  .argument("<out>", "output eStargz blob, - for stdout; or an image: docker://REF, oci:DIR[:TAG]")
  .option("--chunk-size <bytes>", "payload bytes per chunk", intArg("--chunk-size", 1), 4 << 20)
  .option(
    "--level <n>",
    "gzip level 1-9 (default 6: see README for the measured trade-off)",
    intArg("--level", 1, 9),
    6,
  )
  .option(
    "--prioritized-files <file>",
    "paths (one a line, access order) to put before the prefetch landmark",
  )
  .option(
    "--allow-missing-prioritized",
    "warn instead of failing when a prioritized path is not in the layer",
  )
  .addOption(
    new Option(
      "--threads <n>",
      "compression threads (output is identical for any value)",
    ).argParser(intArg("--threads", 1, 256)),
  )
  .option(
    "--platform <os/arch>",
    "images: convert only this platform of an index (default: every platform)",
  )
  .option(
    "--concurrency <n>",
    "images: layers converted at once",
    intArg("--concurrency", 1, 64),
    2,
  )
  .option("--force", "images: convert layers that are already eStargz too")
  .option("--json", "machine-readable report on stdout")
  .action(async (input: string, output: string, o) =>
    (await import("./commands/convert.js")).convertCommand(subject(input), output, o),
  );

readingOptions(program.command("verify"))
  .description("check footer, TOC, every chunk digest and every file digest")
  .argument("<blob>", BLOB_HELP)
  .option("--json", "machine-readable output")
  .action(async (blob: string, o) =>
    (await import("./commands/read.js")).verifyCommand(subject(blob), o),
  );

readingOptions(program.command("ls"))
  .description("list entries (name, type, size, mode, owner, mtime, link)")
  .argument("<blob>", BLOB_HELP)
  .argument("[path]", "a directory to list or a file to show")
  .option("--json", "machine-readable output")
  .action(async (blob: string, path: string | undefined, o) => {
    performance.mark("cli: arguments parsed");
    const { lsCommand } = await import("./commands/read.js");
    performance.mark("cli: command module loaded");
    return lsCommand(subject(blob), path, o);
  });

readingOptions(program.command("cat"))
  .description("write files' contents to stdout, fetching only their chunks")
  .argument("<blob>", BLOB_HELP)
  .argument("<path...>", "files to print, in order")
  .action(async (blob: string, paths: string[], o) =>
    (await import("./commands/read.js")).catCommand(subject(blob), paths, o),
  );

readingOptions(program.command("toc"))
  .description("print the TOC JSON exactly as stored")
  .argument("<blob>", BLOB_HELP)
  .action(async (blob: string, o) =>
    (await import("./commands/read.js")).tocCommand(subject(blob), o),
  );

hostOptions(readingOptions(program.command("mount")))
  .description("mount an image or layer read-only with FUSE (foreground; Ctrl-C unmounts)")
  .argument("<ref>", "docker://REF (the merged image, or --layer N), a blob URL or a local file")
  .argument("<dir>", "an existing directory to mount on")
  .option(
    "--record <file>",
    "write the files opened under the mount, in first-access order, for --prioritized-files",
  )
  .option("--background-fetch", "fetch the rest of the image while no read is waiting")
  .option(
    "--prefetch <file|auto>",
    "fetch a profile's files at mount, one batched request per layer, in the background: a file as --record writes it, or auto (the newest profile pushed with `seekable profile push`); a missing or unusable profile is a warning",
  )
  .option("--json", 'print {"mounted","dir",...} when mounted')
  .action(async (ref: string, dir: string, o) => {
    performance.mark("cli: arguments parsed");
    const { mountCommand } = await import("./commands/mount.js");
    performance.mark("cli: command module loaded");
    return mountCommand(subject(ref), dir, o);
  });

layerStoreOptions(
  program
    .command("store")
    .description(
      "an Additional Layer Store for podman/CRI-O: DIR/<base64 ref>/<layer digest>/{diff,info,blob,use}, served lazily (foreground; Ctrl-C unmounts)",
    )
    .argument(
      "<dir>",
      'an existing directory to mount on (storage.conf: additionallayerstores = ["DIR:ref"])',
    ),
)
  .option(
    "--prefetch <file|auto>",
    "when an image's layers are first resolved, fetch a profile's files, one batched request per layer: a file as `mount --record` writes it (the same for every image), or auto (the newest profile pushed beside each image with `seekable profile push`); none or an unusable one is a warning",
  )
  .addOption(
    new Option(
      "--release-after <seconds>",
      "free a layer's memory once no `use` counts it, none of its files is open and nothing read it for this long; a later access resolves it again (default 120)",
    ).argParser(secondsArg("--release-after")),
  )
  .option(
    "--index <auto|none>",
    "plain gzip layers with an index stored beside the image (`seekable index`) are served lazily (auto), or left to podman (none)",
  )
  .option("--json", 'print {"store":DIR} when mounted')
  .action(async (dir: string, o) =>
    (await import("./commands/store.js")).storeCommand(subject(dir), o),
  );

layerStoreOptions(
  program
    .command("snapshotter")
    .description(
      "a containerd remote snapshotter (proxy plugin on a unix socket): eStargz layers served lazily, everything else an ordinary overlay snapshot (foreground; Ctrl-C stops)",
    )
    .option(
      "--address <sock>",
      "the unix socket to serve (default /run/seekable-snapshotter/snapshotter.sock)",
    )
    .option(
      "--root <dir>",
      "state: metadata.db, snapshots/, the layer store at store/ (default /var/lib/seekable-snapshotter)",
    ),
)
  .option(
    "--prefetch <file|auto>",
    "when an image's layers are first resolved, fetch a profile's files (a file, or auto: the profile pushed beside the image)",
  )
  .option("--json", 'print {"address","root"} when serving')
  .action(async (o) => (await import("./commands/snapshotter.js")).snapshotterCommand(o));

registryOptions(program.command("pull"))
  .description(
    "pull an image into containerd lazily, through its own APIs (like ctr-remote image rpull): eStargz layers committed by the snapshotter, others unpacked",
  )
  .argument("<image>", "docker://HOST/NAME[:TAG|@DIGEST]")
  .requiredOption("--containerd <sock>", "containerd's gRPC socket")
  .option("--namespace <ns>", "containerd namespace", "default")
  .option("--snapshotter <name>", "the proxy snapshotter's name in containerd's config", "seekable")
  .option("--platform <os/arch>", "the platform to pick from an index")
  .option("--json", "print the image name, manifest digest and each layer's chain ID and kind")
  .action(async (image: string, o) =>
    (await import("./commands/pull.js")).pullCommand(subject(image), o),
  );

const profileCommand = program
  .command("profile")
  .description("start-up profiles (the files a program opens) stored beside images");
registryOptions(profileCommand.command("push"))
  .description(
    "store a profile as an OCI artifact whose subject is the image manifest (referrers API, or the sha256-<hex> tag fallback)",
  )
  .argument("<ref>", "docker://REF: the image the profile was recorded on")
  .argument(
    "<file>",
    "the profile: paths one a line, first-access order (as mount --record writes)",
  )
  .option("--platform <os/arch>", "with an index: the platform's manifest is the subject")
  .option("--json", 'print {"digest","subject","via",...} (digest: the artifact manifest)')
  .action(async (ref: string, file: string, o) =>
    (await import("./commands/profile.js")).profilePushCommand(subject(ref), file, o),
  );

registryOptions(program.command("index"))
  .description(
    "index an image's gzip layers (file offsets, inflate checkpoints) and push the index beside it as an OCI referrer: the image and its digests stay as they are",
  )
  .argument("<ref>", "docker://REF")
  .option(
    "--span-size <bytes>",
    "compressed bytes between checkpoints",
    intArg("--span-size", 65536),
    4 << 20,
  )
  .option(
    "--min-layer-size <bytes>",
    "smaller layers are left out (fetched whole; default 10 MiB)",
    intArg("--min-layer-size", 0),
  )
  .option("--platform <os/arch>", "with an index: the platform's manifest")
  .option("--json", 'print {"digest","subject","indexed","skipped",...}')
  .action(async (ref: string, o) =>
    (await import("./commands/index-image.js")).indexCommand(subject(ref), o),
  );

program
  .command("serve")
  .description("serve an OCI image layout as a read-only registry (Range and multi-range)")
  .argument("<layout>", "oci:DIR")
  .option("--port <n>", "TCP port (default: a free one)", intArg("--port", 0, 65535))
  .option("--host <addr>", "address to listen on", "127.0.0.1")
  .option("--json", "print the address as JSON")
  .action(async (layout: string, o) =>
    (await import("./commands/serve.js")).serveCommand(subject(layout), o),
  );

registryOptions(program.command("bench"))
  .description(
    "cold-start benchmark: a program started from a cold `seekable mount` (with and without a recorded profile) against a full pull, through a shaped link",
  )
  .argument("<image>", "docker://REF or oci:DIR[:TAG] (converted to eStargz first if it is not)")
  .option(
    "--workload <file>",
    "paths in access order, one a line (as `mount --record` writes); repeatable",
    (v: string, prev: string[] = []) => [...prev, v],
    [] as string[],
  )
  .option(
    "--run <cmd>",
    "a command started in a chroot of the image (recorded first with `mount --record`: its profile); repeatable (root, FUSE)",
    (v: string, prev: string[] = []) => [...prev, v],
    [] as string[],
  )
  .option(
    "--rtt <ms>",
    "added round-trip time; repeatable or a comma list (default 50)",
    numberList("--rtt"),
    [] as number[],
  )
  .option(
    "--bandwidth <mbit>",
    "link bandwidth in Mbit/s, 0 = unlimited; repeatable or a comma list (default 100)",
    numberList("--bandwidth"),
    [] as number[],
  )
  .option(
    "--repeat <n>",
    "runs of each strategy (medians, with min-max)",
    intArg("--repeat", 1, 100),
    1,
  )
  .option(
    "--strategies <list>",
    "comma list of full-pull, cold-mount, cold-mount-profile, reference-store, batched-list (default: the first three, + reference-store with --reference-store)",
  )
  .option(
    "--reference-store <bin>",
    "the stargz-store binary (tools/reference-store/build.sh): adds the reference lazy store, background fetch and prefetch off",
  )
  .option("--chart <file>", "write an SVG bar chart of the times")
  .option("--platform <os/arch>", "the platform to pick from an index")
  .option(
    "--as-is",
    "bench the image as it is: plain gzip layers are not converted to eStargz first (read through the index `seekable index` stored, or whole)",
  )
  .option("--json", "every figure as JSON on stdout")
  .action(async (image: string, o) =>
    (await import("./commands/bench.js")).benchCommand(subject(image), o),
  );

if (!respawned) await main();

async function main(): Promise<void> {
  if (process.env.SEEKABLE_TIMING) process.once("exit", () => printTiming("cli: process exit"));
  installSignalCleanup();
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0); // reader went away (e.g. `| head`)
  });

  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode =
        e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0
          ? 0
          : 2;
    } else {
      process.stderr.write(errorReport(e, currentInput, program.opts().debug === true));
      process.exitCode = exitCodeOf(e);
    }
  }
}
