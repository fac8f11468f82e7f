#!/usr/bin/env bash
# Install the two peers in venvs of their own (run from the repository root):
#   .venv-ptylab  PtyLab 0.3.7 (numpy, no torch)
#   .venv-ptychi  pty-chi 2.2.0 on the CPU torch 2.13.0, torchvision removed
# torch==2.13.0 goes in FIRST and stays pinned: an unpinned torch pulls a multi-GB CUDA
# build. pty-chi pulls torchvision, whose PyPI wheel does not import beside the CPU torch
# (`operator torchvision::nms does not exist`), so it is uninstalled again; the runner
# (benchmarks/peers/run_ptychi.py) gives pty-chi a stand-in `torchvision.transforms`.
# Usage: bash benchmarks/peers/install.sh [ptylab|ptychi|all]   (or: make peers)
set -euo pipefail
PYTHON=${PYTHON:-python3}
which=${1:-all}
pin=$(mktemp)
trap 'rm -f "$pin"' EXIT
echo "torch==2.13.0" > "$pin"

install_ptylab() {
  local v=.venv-ptylab
  [ -f "$v/.installed" ] && { echo "$v: installed"; return; }
  "$PYTHON" -m venv "$v"
  "$v/bin/python" -m pip install --quiet --upgrade pip
  "$v/bin/python" -m pip install --quiet ptylab==0.3.7 h5py
  "$v/bin/python" -c "import PtyLab; print('PtyLab', PtyLab.__file__)"
  touch "$v/.installed"
}

install_ptychi() {
  local v=.venv-ptychi
  [ -f "$v/.installed" ] && { echo "$v: installed"; return; }
  "$PYTHON" -m venv "$v"
  "$v/bin/python" -m pip install --quiet --upgrade pip
  "$v/bin/python" -m pip install --quiet torch==2.13.0
  "$v/bin/python" -m pip install --quiet -c "$pin" ptychi==2.2.0 h5py
  "$v/bin/python" -m pip uninstall --quiet -y torchvision
  "$v/bin/python" benchmarks/peers/run_ptychi.py --self-test
  touch "$v/.installed"
}

case "$which" in
  ptylab) install_ptylab ;;
  ptychi) install_ptychi ;;
  all) install_ptylab; install_ptychi ;;
  *) echo "usage: $0 [ptylab|ptychi|all]" >&2; exit 2 ;;
esac
