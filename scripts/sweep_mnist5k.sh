#!/usr/bin/env bash
# The committed foundation runs: mnist_5k / ResNet-18 with SGD, Momentum and Adam, baseline and
# AutoLR, seeds 0-2. Resumable: a completed run is skipped, an unfinished one resumes from its
# last checkpoint. JOBS runs in parallel (one torch thread each).
#   scripts/sweep_mnist5k.sh            # JOBS=2 by default
set -euo pipefail
cd "$(dirname "$0")/.."
REPRO=${REPRO:-.venv/bin/repro}
JOBS=${JOBS:-2}
RESULTS=${RESULTS:-results}

run_one() {
  local opt=$1 schedule=$2 seed=$3
  local folder="$RESULTS/mnist_5k-resnet18_mnist/$schedule-$opt/seed$seed"
  local args=(dataset=mnist_5k "opt=$opt" "schedule=$schedule" "seed=$seed" trainer.threads=1
              trainer.keep_checkpoint=false "paths.results_dir=$(realpath "$RESULTS")")
  if [[ -f "$folder/run.json" ]] && grep -q '"status": "completed"' "$folder/run.json"; then
    echo "skip $folder (completed)"
  elif [[ -f "$folder/run.json" ]]; then
    "$REPRO" run "${args[@]}" "resume=$folder"
  else
    "$REPRO" run "${args[@]}"
  fi
}
export -f run_one
export REPRO RESULTS

for seed in 0 1 2; do
  for opt in sgd momentum adam; do
    for schedule in baseline autolr; do
      echo "$opt $schedule $seed"
    done
  done
done | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@" > /dev/null 2>&1 || echo "failed: $*"' _
echo "sweep finished"
