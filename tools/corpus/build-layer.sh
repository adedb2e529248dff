#!/usr/bin/env bash
# Builds a deterministic real-data layer (~259 MB uncompressed, 15.5k entries) from files
# of this Debian bookworm system and the repository's node_modules:
#   .work/corpus/layer.tar      (GNU tar, PAX format, sorted names, fixed mtime/owner)
#   .work/corpus/layer.tar.gz   (gzip -6 via pigz when available, no name/timestamp)
#   .work/corpus/layer.json     (sizes and sha256 of both)
#
# Content: Go 1.19 source tree (13k small text files, testdata binaries, symlinked dirs
# from /usr/lib/go-1.19), the Go toolchain binaries (large static executables), glibc
# gconv modules (many .so), perl-base, tzdata (symlinks), hard-linked /usr/bin programs
# (gzip/gunzip, bzip2/bzcat, pigz/unpigz, perl/perl5.x) and the TypeScript compiler from
# node_modules. Directories present on a bookworm machine with golang-go and pigz
# installed (CI); the size is capped by choosing directories, never by truncating files.
#
# Cached: does nothing when both outputs exist (use --force to rebuild).
# Usage: tools/corpus/build-layer.sh [--force] [--out DIR]
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/.work/corpus"
FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --out) OUT="$2"; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build-layer: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

TAR="$OUT/layer.tar"
TGZ="$OUT/layer.tar.gz"
if [ "$FORCE" = 0 ] && [ -s "$TAR" ] && [ -s "$TGZ" ]; then
  echo "build-layer: cached $TAR ($(stat -c %s "$TAR") bytes)" >&2
  exit 0
fi
mkdir -p "$OUT"

# Paths relative to / (required: the build fails without them).
REQUIRED=(
  usr/share/go-1.19
  usr/lib/go-1.19/VERSION
  usr/lib/go-1.19/api
  usr/lib/go-1.19/misc
  usr/lib/go-1.19/src
  usr/lib/go-1.19/test
  usr/lib/go-1.19/bin
  usr/lib/go-1.19/pkg/tool
  usr/lib/x86_64-linux-gnu/gconv
  usr/lib/x86_64-linux-gnu/perl-base
  usr/bin/gzip
  usr/bin/gunzip
  usr/bin/uncompress
  usr/bin/zcat
)
# Present on the project machines; skipped with a warning elsewhere.
OPTIONAL=(
  usr/share/zoneinfo
  usr/bin/bzip2
  usr/bin/bunzip2
  usr/bin/bzcat
  usr/bin/pigz
  usr/bin/unpigz
  usr/bin/perl
  "usr/bin/perl5.36.0"
)
# Relative to the repository root; stored under app/.
NODE_DIRS=(
  node_modules/typescript
)

SYS=()
for p in "${REQUIRED[@]}"; do
  if [ ! -e "/$p" ] && [ ! -L "/$p" ]; then
    echo "build-layer: required /$p is missing (apt-get install -y golang-go pigz)" >&2
    exit 1
  fi
  SYS+=("$p")
done
for p in "${OPTIONAL[@]}"; do
  if [ -e "/$p" ] || [ -L "/$p" ]; then SYS+=("$p"); else echo "build-layer: skipping missing /$p" >&2; fi
done
APP=()
for p in "${NODE_DIRS[@]}"; do
  if [ -e "$ROOT/$p" ]; then APP+=("$p"); else echo "build-layer: skipping missing $ROOT/$p (run npm ci)" >&2; fi
done
mapfile -t SYS < <(printf '%s\n' "${SYS[@]}" | sort)
mapfile -t APP < <(printf '%s\n' "${APP[@]}" | sort)

TMP="$TAR.tmp.$$"
TMPGZ="$TGZ.tmp.$$"
trap 'rm -f "$TMP" "$TMPGZ"' EXIT

COMMON=(--sort=name --mtime=2024-01-01T00:00:00Z --owner=0 --group=0 --numeric-owner
  --format=pax --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime
  --no-acls --no-xattrs --no-selinux)

# Parent directory entries first (as an image builder would emit them), then the trees.
# Hard links are detected across the whole archive (same tar invocation).
tar -cf "$TMP" "${COMMON[@]}" \
  -C / --no-recursion usr usr/bin usr/lib usr/lib/x86_64-linux-gnu usr/share --recursion \
  "${SYS[@]}" \
  -C "$ROOT" --transform='s,^node_modules,app/node_modules,' \
  --exclude='node_modules/.vite' --exclude='node_modules/.cache' \
  "${APP[@]}"

SIZE=$(stat -c %s "$TMP")
MB=$((SIZE / 1000000))
if [ "$MB" -lt 200 ] || [ "$MB" -gt 300 ]; then
  echo "build-layer: warning: layer.tar is $MB MB (expected 200-300 MB)" >&2
fi

if command -v pigz >/dev/null 2>&1; then
  pigz -6 -n -c <"$TMP" >"$TMPGZ"
else
  gzip -6 -n -c <"$TMP" >"$TMPGZ"
fi
TAR_SHA=$(sha256sum "$TMP" | cut -d' ' -f1)
TGZ_SHA=$(sha256sum "$TMPGZ" | cut -d' ' -f1)
ENTRIES=$(tar -tf "$TMP" | wc -l)
mv -f "$TMP" "$TAR"
mv -f "$TMPGZ" "$TGZ"
cat >"$OUT/layer.json" <<EOF
{"tar":"$TAR","tarSize":$SIZE,"diffID":"sha256:$TAR_SHA","entries":$ENTRIES,"tarGz":"$TGZ","tarGzSize":$(stat -c %s "$TGZ"),"tarGzDigest":"sha256:$TGZ_SHA"}
EOF
echo "build-layer: wrote $TAR ($SIZE bytes, $ENTRIES entries) and $TGZ ($(stat -c %s "$TGZ") bytes)" >&2
