#!/usr/bin/env bash
# Builds spool's image from a spool binary, registry-free: first the base image
# (docker/base-image.sh), then docker/Dockerfile on a build context of the binary alone.
#
#   docker/build.sh BINARY [TAG [BASE_TAG]]   (defaults: spool:local, spool-base:local)
#
# The binary's debug information is stripped on the way in (about 97 MB down to 19 MB for a
# release build; function names stay, so a panic's backtrace still names them) unless
# SPOOL_IMAGE_KEEP_DEBUG=1.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: $0 BINARY [TAG [BASE_TAG]]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
binary=$1
tag=${2:-spool:local}
base=${3:-spool-base:local}
if [ ! -x "$binary" ]; then
    echo "build: $binary is not an executable file (cargo build --release --bins makes one)" >&2
    exit 1
fi

bash "$here/base-image.sh" "$binary" "$base"

context=$(mktemp -d "${TMPDIR:-/tmp}/spool-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
mkdir "$context/data"
if [ "${SPOOL_IMAGE_KEEP_DEBUG:-0}" != 1 ] && command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$context/spool" "$binary"
else
    cp "$binary" "$context/spool"
fi

# Without the buildx plugin the client cannot use BuildKit; the classic builder reads this
# Dockerfile the same way.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build --quiet --build-arg "BASE=$base" -t "$tag" -f "$here/Dockerfile" "$context" >/dev/null
echo "build: built $tag on $base ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
