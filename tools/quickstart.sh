#!/usr/bin/env bash
# The main job on a sample made here: a tar.gz layer of this repository's own files is
# converted to eStargz, its TOC shown, a file read back through the TOC, and all verified.
set -euo pipefail
cd "$(dirname "$0")/.."
work=.work/quickstart
rm -rf "$work" && mkdir -p "$work/root/app"
cp -r packages/format/src "$work/root/app/src"
cp README.md LICENSE "$work/root/app/"
tar -czf "$work/layer.tar.gz" -C "$work/root" --sort=name --owner=0 --group=0 --numeric-owner --mtime=2024-01-01 .
seekable() { node packages/cli/dist/main.js "$@"; }
echo "== seekable convert $work/layer.tar.gz $work/layer.esgz"
seekable convert "$work/layer.tar.gz" "$work/layer.esgz"
echo "== seekable toc (first 30 lines)"
seekable toc "$work/layer.esgz" | head -n 30
echo "== seekable ls"
seekable ls "$work/layer.esgz"
echo "== seekable cat app/LICENSE (first 3 lines)"
seekable cat "$work/layer.esgz" app/LICENSE | head -n 3
echo "== seekable verify"
seekable verify "$work/layer.esgz"
