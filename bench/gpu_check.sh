#!/usr/bin/env bash
# GPU check of the fold engine (what the CPU tests cannot prove; see bench/gpu_check.py):
# at most 8 minutes on one H100/H200, offline, random weights only. Prints one summary
# JSON (also written to --out, step by step). Needs a CUDA build of torch (envs/foldatlas-gpu.yaml).
#   bash bench/gpu_check.sh [--out FILE] [--skip STEP ...]
#   bash bench/gpu_check.sh --dry-run      # the plan, without a GPU (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# the library from this checkout when it is not installed (e.g. the conda env of fold jobs)
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
OUTFILE=gpu_check.json
for ((i = 1; i <= $#; i++)); do
    if [ "${!i}" = "--out" ]; then j=$((i + 1)); OUTFILE=${!j}; fi
done
rc=0
timeout --kill-after=10 480 "$PY" bench/gpu_check.py "$@" || rc=$?
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "gpu_check: stopped at the 8-minute limit; the steps that finished:" >&2
    cat "$OUTFILE"
fi
exit "$rc"
