#!/usr/bin/env bash
# Set up a fresh machine: redis-server (Debian), CPU torch pinned, the project with its camera and dev extras.
# GPU hosts: install your own CUDA torch first, then `pip install -e ".[gpu]"` from NVIDIA's index (README).
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
if ! command -v redis-server >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq redis-server >/dev/null
fi
python3 -m pip install -q --upgrade pip
if ! python3 -c "import torch" 2>/dev/null; then
  # CPU machines: pin torch, or an unpinned torch pulls several GB of CUDA packages
  python3 -m pip install -q torch==2.13.0
fi
python3 -m pip install -q -e ".[camera,dev]"
