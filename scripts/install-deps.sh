#!/usr/bin/env bash
# Installs what building, the demo and the tests need on Debian 12: FFmpeg's libraries, HDF5, zstd, OpenBLAS,
# cJSON and OpenSSL (SHA-256) for the tools; PyTorch, Pillow and NumPy from Debian as the test oracle; h5py,
# hdf5plugin and safetensors from PyPI in a virtual environment that also sees Debian's PyTorch.
# The CUDA toolkit is expected at /usr/local/cuda and is not installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

packages=(
  build-essential pkg-config ca-certificates
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
  libhdf5-dev hdf5-tools libzstd-dev libopenblas-dev libcjson-dev libssl-dev
  python3 python3-venv python3-pip python3-torch python3-pil python3-numpy
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Python helpers for the tests: Debian's interpreter (it has python3-torch) plus pip's h5py/hdf5plugin.
venv=build/venv
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p build
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -c "import h5py, hdf5plugin, safetensors" 2>/dev/null || \
  "$venv/bin/pip" install --quiet "h5py>=3.8" "hdf5plugin>=4.1" "safetensors>=0.4"
"$venv/bin/python" -c "import torch, PIL, numpy, h5py, hdf5plugin; print('install-deps: python oracle ready: torch', torch.__version__)"
