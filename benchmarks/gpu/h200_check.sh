#!/usr/bin/env bash
# The prepared GPU check of issue 13 (README, "GPU (prepared, not yet run)"). NOT YET RUN on a
# GPU: written and dry-run on a CPU machine only (see the README section).
#
# One H200 session, one command, under 8 minutes; every step has its own `timeout` and a
# share of one overall deadline, and everything lands in $OUT (at most 8 files come back):
#   nvidia-smi.txt   the GPU before and after
#   env.txt          python, torch, CUDA, the ptyframe that was imported, the engines found
#   steps.log        each step's start, exit code and seconds
#   gpu-tier.log     pytest -m gpu (tests/engines/test_gpu.py, tests/unit/test_denoise.py's GPU test)
#   gpu-junit.xml    the same as JUnit XML
#   gpu_speed.md     the benchmark table (benchmarks/gpu_speed.py), rows as they finish
#   gpu_speed.log    the benchmark's output
#
# Before the session, on the machine with the checkout:   make gpu-wheels
# Then the device tool, from the repository root:
#   run(command="bash benchmarks/gpu/h200_check.sh", carry=[".gpu-wheels"], timeout_s=540)
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg
PY=${PY:-python3}
# a CPU dry run of this script: DEVICE=cpu BENCH_ARGS=--small PY=... bash benchmarks/gpu/h200_check.sh
DEVICE=${DEVICE:-cuda}
# a rerun of one part only: STEPS=bench (or STEPS=tier)
STEPS=${STEPS:-"tier bench"}
BENCH_ARGS=${BENCH_ARGS:-}
START=$(date +%s)
TOTAL_S=${TOTAL_S:-460}  # the whole script; the device tool's timeout_s should exceed it

exec 3>&1  # the log lines go to the console too, whatever a step redirects
log() { echo "[$(date -u +%H:%M:%S) +$(($(date +%s) - START))s] $*" | tee -a "$OUT/steps.log" >&3; }

# step NAME BUDGET_S CMD...: run CMD under `timeout` (its budget, or what is left if less)
step() {
  local name=$1 budget=$2 left
  shift 2
  left=$((START + TOTAL_S - $(date +%s)))
  [ "$left" -lt "$budget" ] && budget=$left
  if [ "$budget" -le 5 ]; then log "$name: skipped, no time left"; return 124; fi
  log "$name: start (timeout ${budget}s)"
  local t0=$(date +%s)
  timeout --kill-after=10 "$budget" "$@"
  local rc=$?
  log "$name: rc=$rc in $(($(date +%s) - t0))s"
  return $rc
}

{ date -u; nvidia-smi; } >"$OUT/nvidia-smi.txt" 2>&1

# hydra-core, omegaconf, antlr4 and ptyframe's wheels (entry points); the code is the tree's
step install 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .gpu-wheels/*.whl || { log "install failed: run make gpu-wheels"; exit 3; }
export PYTHONPATH="$PWD:$PWD/plugins/ptyframe-raar/src:$PWD/plugins/ptyframe-lightning/src:/tmp/site"

step env 60 "$PY" - >"$OUT/env.txt" 2>&1 <<'EOF'
import sys, torch, ptyframe
from ptyframe.plugins import default_registry
print("python", sys.version)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
print("ptyframe from", ptyframe.__file__)
print("engines", default_registry().names("engine"))
EOF

case " $STEPS " in *" tier "*) ;; *) log "gpu-tier: not asked for (STEPS=$STEPS)"; false ;; esac &&
step gpu-tier 150 "$PY" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" \
  --junitxml="$OUT/gpu-junit.xml" tests/engines/test_gpu.py tests/unit/test_denoise.py \
  >"$OUT/gpu-tier.log" 2>&1

case " $STEPS " in *" bench "*) ;; *) log "benchmark: not asked for (STEPS=$STEPS)"; false ;; esac &&
# shellcheck disable=SC2086
step benchmark 300 "$PY" benchmarks/gpu_speed.py --device "$DEVICE" --budget-s 10 --max-epochs 10 \
  --patterns-on-host --out "$OUT/gpu_speed.md" $BENCH_ARGS >"$OUT/gpu_speed.log" 2>&1

{ echo; date -u; nvidia-smi; } >>"$OUT/nvidia-smi.txt" 2>&1
log "done"
