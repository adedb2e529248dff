#!/bin/sh
# Builds tools/reference-store/bin/stargz-store, the reference lazy store for `seekable bench`,
# offline in GOPATH mode against Debian's packaged estargz v0.12.0
# (apt-get install -y golang-go golang-github-containerd-stargz-snapshotter-dev).
# Idempotent: does nothing when the binary is newer than every source file.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$here/bin/stargz-store"
gocode=/usr/share/gocode
pkg="$gocode/src/github.com/containerd/stargz-snapshotter/store"

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: go not found; install it: apt-get install -y golang-go" >&2
  exit 1
fi
if [ ! -f "$pkg/manager.go" ]; then
  echo "build.sh: $pkg missing; install it: apt-get install -y golang-github-containerd-stargz-snapshotter-dev" >&2
  exit 1
fi

if [ -x "$bin" ] && [ -z "$(find "$here" -maxdepth 1 \( -name '*.go' -o -name build.sh \) -newer "$bin")" ]; then
  exit 0
fi

mkdir -p "$here/bin" "$root/.work/gopath"
tmp="$bin.tmp.$$"
cd "$here"
if ! GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 GOPATH="$root/.work/gopath:$gocode" go build -o "$tmp" .; then
  rm -f "$tmp"
  echo "build.sh: go build failed" >&2
  exit 1
fi
mv "$tmp" "$bin"
