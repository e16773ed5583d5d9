#!/usr/bin/env bash
# One short loan of a CUDA GPU, used in one command: the GPU measurement (benchmarks/gpu_check.py), then the
# reproduction study continued on the GPU until the time is up. Everything lands in one folder to bring back.
#
#   bash scripts/gpu_session.sh [SECONDS] [OUT]     # defaults: 540 s in all; $OUT, else runs/gpu_session
#
# Needs: python3 with torch (CUDA) and taskbalance's dependencies (numpy, scipy, click, rich, matplotlib, pillow);
# taskbalance itself is read from src/ (no install). The study starts from the committed snapshot
# (docs/results/reproduction/study/results.sqlite) when the machine has no working store, so take a fresh
# `python scripts/reproduction.py snapshot` before the working tree travels.
#
# Writes into OUT:
#   environment.txt               nvidia-smi, torch and CUDA versions
#   gpu_check.md, gpu_check.log   the measurement's table (goes to docs/performance.md) and its full output
#   model_cost.md, model_cost.log per-sample times and GPU-hours per run of the paper presets' models (docs/models.md)
#   study.log                     the study's progress lines
#   study.sqlite.gz               a consistent copy of the study's store when time was up
# Back here: gunzip -c OUT/study.sqlite.gz > /tmp/gpu-study.sqlite
#            taskbalance merge runs/reproduction /tmp/gpu-study.sqlite    # the GPU's finished runs join the CPU's
# A run cut off by the deadline is not in the copy as finished; the CPU study runs it again.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${1:-540}
out=${2:-${OUT:-runs/gpu_session}}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
work="${TMPDIR:-/tmp}/taskbalance-study"

{ nvidia-smi || true; "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available())"; } > "$out/environment.txt" 2>&1
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_session: no CUDA GPU visible (see $out/environment.txt)" >&2
    exit 2
fi

# The measurement first: it is the shorter job and its numbers are what the loan is for.
check_limit=$(( budget * 55 / 100 ))
timeout --signal=INT --kill-after=15 "$check_limit" \
    "$python" benchmarks/gpu_check.py --out "$out/gpu_check.md" > "$out/gpu_check.log" 2>&1
echo "gpu_check: exit $? after ${SECONDS} s (limit ${check_limit} s)" >> "$out/gpu_check.log"

# The paper presets' models at their own batch sizes in bf16: what one paper run costs on this GPU.
timeout --signal=INT --kill-after=10 60 \
    "$python" benchmarks/model_cost.py --device cuda --preset-batch --precision bf16 --steps 3 > "$out/model_cost.md" \
    2> "$out/model_cost.log"
echo "model_cost: exit $? after ${SECONDS} s (limit 60 s)" >> "$out/model_cost.log"

# The study for what is left, minus a margin for copying the store out.
study_limit=$(( budget - SECONDS - 40 ))
if (( study_limit > 30 )); then
    timeout --signal=INT --kill-after=15 "$study_limit" \
        "$python" scripts/reproduction.py --work "$work" run --device cuda --runs-per-device 8 --data-on-device \
        > "$out/study.log" 2>&1
    echo "study: exit $? after ${SECONDS} s (limit ${study_limit} s)" >> "$out/study.log"
else
    echo "study: skipped, only ${study_limit} s left" > "$out/study.log"
fi
if [[ -f "$work/results.sqlite" ]]; then
    # `snapshot` takes a consistent copy (SQLite's backup), also of a store a killed worker left mid-write.
    "$python" scripts/reproduction.py --work "$work" --committed "$out/study.sqlite" snapshot >> "$out/study.log" 2>&1 \
        && gzip -f -9 "$out/study.sqlite"
fi
"$python" scripts/reproduction.py --work "$work" status >> "$out/study.log" 2>&1 || true
echo "gpu_session: done in ${SECONDS} s; files in $out"
