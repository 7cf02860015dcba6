#!/usr/bin/env bash
# The demo: installs what is missing, builds, fetches the sample videos, then runs the product's main job on
# them: mvd-extract builds a teacher-target cache (seeded random small teachers at the real token geometry,
# 16 x 224 x 224 clips, tubelet 2x16x16, 1568 tokens), and mvd-train pretrains a small student from it. It
# prints the mean loss of the first and last 10 steps and fails unless the loss fell.
# Outputs: examples/out/cache (the cache), examples/out/run (checkpoint, metrics.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
make -j2 all
bash scripts/fetch-sample-data.sh

out=examples/out
rm -rf "$out"
start=$SECONDS

# Small widths (multiples of 16) keep the demo to a few minutes on 2 cores; the token geometry is the real one.
build/mvd-extract --list examples/data/list.txt --data-root examples/data --out "$out/cache" \
  --random-teachers 7 --image-dim 64 --image-depth 2 --image-heads 4 --video-dim 64 --video-depth 2 \
  --video-heads 4 --views 4 --shard-size 8 --seed 1
extract_s=$((SECONDS - start))

build/mvd-train --cache "$out/cache" --data-root examples/data --out "$out/run" \
  --dim 64 --depth 2 --heads 4 --decoder-dim 64 --decoder-depth 1 --decoder-heads 4 \
  --batch 2 --steps 40 --warmup-steps 5 --base-lr 0.128 --base-min-lr 0.0128 --save-every 20 --log-every 5 --seed 1
train_s=$((SECONDS - start - extract_s))

# The verdict, from the per-step metrics.
awk -F'"loss":' '{ split($2, a, ","); loss[NR] = a[1] } END {
  n = NR; if (n < 20) { print "demo: too few steps recorded"; exit 1 }
  for (i = 1; i <= 10; i++) { first += loss[i]; last += loss[n - 10 + i] }
  printf "demo: mean loss of the first 10 steps %.5f, of the last 10 steps %.5f\n", first / 10, last / 10
  if (!(last < first)) { print "demo: FAILED: the loss did not fall"; exit 1 }
}' "$out/run/metrics.jsonl"
echo "demo: extract ${extract_s} s, train ${train_s} s; cache in $out/cache, student in $out/run/checkpoint.safetensors"
