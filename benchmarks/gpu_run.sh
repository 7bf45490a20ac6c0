#!/usr/bin/env bash
# One call on the lent GPU machine (issue 37), with the .gpu/ folder that
# benchmarks/gpu_prepare.sh filled carried beside the working tree:
#   (a) `make gpu-check`'s rows, each beside plain PyTorch measured in the same run;
#   (b) Bengio et al.'s Brown rows MLP9 (3 seeds trained to early stopping) and MLP10 (MLP9's
#       networks mixed with the trigram, which is counted again from the train split), then
#       `python -m analysis.paper`, so docs/results.md and docs/results/bengio2003_brown.*
#       gain them (the table's other cells come from docs/results/bengio2003_brown.json).
# Everything runs under `timeout`s that end it within GPU_BUDGET_S; the log is written into
# $OUT as it goes, and what exists is copied to $OUT on any exit, so a cut-off run still
# returns its log and partial results. At most 8 files go to $OUT.
#
#   bash benchmarks/gpu_run.sh                     # on the GPU machine ($OUT set by the tool)
#   DEVICE=cpu GPU_CHECK_ARGS=--small PAPER_ARGS='train.max_epochs=1 data.tokens_per_epoch=3000' \
#     OUT=/tmp/out bash benchmarks/gpu_run.sh       # the dry run of the same steps on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-/tmp/gpu-out}
BUDGET=${GPU_BUDGET_S:-560}      # seconds for all of it: below the device call's 600 s limit
CHECK_S=${GPU_CHECK_S:-150}      # of which gpu-check may take this much
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
SITE=${GPU_SITE:-/tmp/site}
WHL=${GPU_WHEELS:-.gpu/whl}
mkdir -p "$OUT"
LOG=$OUT/gpu-run.log
exec > >(tee -a "$LOG") 2>&1
left() { echo $((BUDGET - ($(date +%s) - START))); }

collect() {
  cp docs/results.md "$OUT/results.md" 2>/dev/null
  for ext in json md csv tex; do
    cp "docs/results/bengio2003_brown.$ext" "$OUT/bengio2003_brown.$ext" 2>/dev/null
  done
  # the MLflow store (runs, metrics, the lockbox ledger of test reads), not the weights
  if [ -d runs ]; then
    tar -czf "$OUT/runs-store.tgz" --exclude='runs/artifacts' --exclude='runs/checkpoints' \
      --exclude='runs/mlruns' runs 2>/dev/null
  fi
  echo "gpu_run: $(( $(date +%s) - START )) s in all; in \$OUT: $(ls "$OUT" | tr '\n' ' ')"
}
trap collect EXIT

echo "gpu_run: $(date -u +%FT%TZ) on $(hostname), device=$DEVICE, budget ${BUDGET} s"
export PYTHONUNBUFFERED=1 SEEDSWEEP_CACHE=$PWD/.gpu/cache
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHL"/*.whl \
  || { echo "gpu_run: could not install the carried wheels from $WHL"; exit 75; }
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import torch, optuna, mlflow, hydra, omegaconf, sqlalchemy; print('torch', torch.__version__, \
'cuda', torch.cuda.is_available(), '| optuna', optuna.__version__, '| mlflow', mlflow.__version__)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv

echo; echo "== (a) gpu-check (at most ${CHECK_S} s)"
# shellcheck disable=SC2086
timeout -k 10 "$CHECK_S" $PY -m benchmarks.gpu_check --device "$DEVICE" --out "$OUT" ${GPU_CHECK_ARGS:-}
echo "gpu-check exit $?"

echo; echo "== (b) Brown MLP9 and MLP10 (at most $(( $(left) - 60 )) s)"
# shellcheck disable=SC2086
timeout -k 20 $(( $(left) - 60 )) $PY -m sweeps.paper bengio2003_brown --rows=mlp9,mlp10 \
  device="$DEVICE" ${PAPER_ARGS:-}
echo "paper exit $?"
echo; echo "== docs/results.md"
timeout -k 5 $(( $(left) > 20 ? $(left) - 10 : 10 )) $PY -m analysis.paper
echo "analysis exit $?"
