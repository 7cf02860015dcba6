#!/usr/bin/env bash
# Benchmarks: each C model beside the PyTorch reference (tests/reference/mvd_reference.py, fp32, same thread
# count) on the same sizes, in the same run, with the ratio. Timings are medians over REPS iterations after
# a warm-up. Run `make bench`; the figures go to docs/PERFORMANCE.md by hand, with the machine they came from.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
threads=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} # both sides: see cli_prefer_passive_openmp in common/cli.h
py=build/venv/bin/python
mkdir -p build/bench

row() { # row LABEL ARGS...
  local label=$1; shift
  local c p
  c=$(build/bench/bench_model "$@" | sed -E 's/.*"seconds": ([0-9.]+).*/\1/')
  p=$("$py" scripts/bench_peer.py "$@" | sed -E 's/.*"seconds": ([0-9.]+).*/\1/')
  awk -v l="$label" -v c="$c" -v p="$p" 'BEGIN { printf "| %-52s | %9.3f | %9.3f | %5.2fx |\n", l, c, p, p / c }'
}

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads; torch $("$py" -c 'import torch; print(torch.__version__)')"
echo "| workload (16 x 224 x 224 clips, 1568 tokens)               |  C (s)    | PyTorch (s) | speed-up |"
echo "|------------------------------------------------------|-----------|-----------|--------|"
row "student step, demo size (64/2/4, dec 64/1/4), batch 2" student 64 2 4 64 1 4 64 2 16 224 "$reps"
row "student step, ViT-S (384/12/6, dec 384/2/6), batch 1" student 384 12 6 384 2 6 768 1 16 224 "$reps"
row "video teacher forward, ViT-B (768/12/12), one clip" teacher video 768 12 12 16 224 "$reps"
row "image teacher forward, ViT-B (768/12/12), 8 frames" teacher image 768 12 12 16 224 "$reps"

echo
echo "Clip loading (decode + resize + SHA-256), before and after reading by timestamp with seeking:"
build/bench/bench_video_seek "${CLIPS:-8}"
