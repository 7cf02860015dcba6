#!/usr/bin/env bash
# fetch-sample-data.sh: puts a few small, real videos into examples/data/ for the tests and the demo.
#
# They come from Debian's opencv-doc package (OpenCV's own sample data), so the tests decode genuine files from
# several codecs and containers: Megamind.avi, vtest.avi and tree.avi (AVI; tree.avi's header claims more frames
# than it holds) and cup.mp4 (MP4, shipped gzipped). Also writes examples/data/list.txt in the list format
# (`path label`). Idempotent: does nothing when every file is already there. The files are never committed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/examples/data"
videos=(Megamind.avi vtest.avi tree.avi cup.mp4)

all_present() {
    local v
    for v in "${videos[@]}"; do
        [[ -s "$dest/$v" ]] || return 1
    done
    [[ -s "$dest/list.txt" ]]
}

if all_present; then
    echo "sample data already in $dest"
    exit 0
fi

mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
# apt-get download writes into the current directory; refresh the package index only if the first try fails.
if ! apt-get download opencv-doc >/dev/null 2>&1; then
    echo "apt-get download opencv-doc failed; running apt-get update and retrying" >&2
    apt-get update >/dev/null
    apt-get download opencv-doc
fi
deb="$(ls "$work"/opencv-doc_*.deb 2>/dev/null | head -n 1)"
[[ -n "$deb" ]] || { echo "error: opencv-doc package not downloaded" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/pkg"

find_one() { # the first file called $1 inside the unpacked package
    find "$work/pkg" -type f -name "$1" -print -quit
}

for v in Megamind.avi vtest.avi tree.avi; do
    src="$(find_one "$v")"
    [[ -n "$src" ]] || { echo "error: $v not found in opencv-doc" >&2; exit 1; }
    cp "$src" "$dest/$v.tmp" && mv "$dest/$v.tmp" "$dest/$v"
done

cup="$(find_one cup.mp4.gz)"
if [[ -n "$cup" ]]; then
    gunzip -c "$cup" >"$dest/cup.mp4.tmp"
else
    cup="$(find_one cup.mp4)"
    [[ -n "$cup" ]] || { echo "error: cup.mp4 not found in opencv-doc" >&2; exit 1; }
    cp "$cup" "$dest/cup.mp4.tmp"
fi
mv "$dest/cup.mp4.tmp" "$dest/cup.mp4"

label=0
: >"$dest/list.txt.tmp"
for v in "${videos[@]}"; do
    echo "$v $label" >>"$dest/list.txt.tmp"
    label=$((label + 1))
done
mv "$dest/list.txt.tmp" "$dest/list.txt"

echo "sample data ready in $dest: ${videos[*]}"
