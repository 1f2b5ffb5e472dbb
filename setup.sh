#!/usr/bin/env bash
# Set up a fresh machine: redis-server, and chromium with its driver for the line page's browser test (Debian),
# CPU torch pinned, the project with its camera and dev extras.
# GPU hosts: install your own CUDA torch first, then `pip install -e ".[gpu]"` from NVIDIA's index (README).
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q --upgrade pip
if ! python3 -c "import torch" 2>/dev/null; then
  # CPU machines: pin torch, or an unpinned torch pulls several GB of CUDA packages
  python3 -m pip install -q torch==2.13.0
fi
python3 -m pip install -q -e ".[camera,dev]"
