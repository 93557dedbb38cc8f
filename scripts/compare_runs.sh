#!/usr/bin/env bash
# The committed peer comparisons, then their tables:
#   mnist_5k / ResNet-18: every method of `repro compare` (momentum schedules and LR-free
#     optimizers), seeds 0-2;
#   Fashion-MNIST / ResNet-18, full data from the Debian package dataset-fashion-mnist: AutoLR,
#     baseline, cosine, knee, schedule-free SGD and Prodigy, seeds 0-1, on a 4-epoch budget
#     (baseline LR drops after epochs 2 and 3) in folders seed<N>-e4. The 30-epoch recipe would
#     take about 100 minutes per run on one core, an estimate from the 195 s per epoch of the 4-epoch runs.
# Resumable: a completed or diverged run is skipped, an unfinished one resumes from its last
# checkpoint. JOBS runs in parallel (one torch thread each); `repro compare --read-only` then
# writes results/<dataset>-resnet18_mnist/comparison[-e4]/. Its two figures are copied to PLOTS
# (default plots/) as comparison_<setting>[_e4].png and range_test_peer_<setting>[_e4].png.
#   scripts/compare_runs.sh                 # both settings, JOBS=2
#   SETTINGS=mnist_5k scripts/compare_runs.sh
#   SMOKE=1 RESULTS=/tmp/compare-smoke scripts/compare_runs.sh   # 1 epoch on 256 digits images, seed 0
set -euo pipefail
cd "$(dirname "$0")/.."
REPRO=${REPRO:-.venv/bin/repro}
JOBS=${JOBS:-2}
RESULTS=${RESULTS:-results}
SETTINGS=${SETTINGS:-"mnist_5k fashion_mnist"}
FASHION_ROOT=${FASHION_ROOT:-/usr/share/datasets/fashion-mnist}
PLOTS=${PLOTS:-plots}
mkdir -p "$RESULTS" "$PLOTS"
RESULTS=$(realpath "$RESULTS")

MNIST_METHODS="baseline-momentum,autolr-momentum,plateau-momentum,cosine-momentum,onecycle-momentum,knee-momentum"
MNIST_METHODS+=",constant-schedulefree_sgd,constant-schedulefree_adamw,constant-prodigy,constant-dadapt_sgd"
MNIST_METHODS+=",constant-dadapt_adam"
FASHION_METHODS="baseline-momentum,autolr-momentum,cosine-momentum,knee-momentum,constant-schedulefree_sgd"
FASHION_METHODS+=",constant-prodigy"

FASHION_ARGS="dataset=fashion_mnist dataset.root=$FASHION_ROOT dataset.download=false"
FASHION_ARGS+=" trainer.epochs=4 dataset.recipe.momentum.milestones=[2,3] suffix=e4"

setting_args() {  # dataset name -> "overrides|methods|seeds|setting folder"
  case $1 in
    mnist_5k) echo "dataset=mnist_5k|$MNIST_METHODS|0,1,2|mnist_5k-resnet18_mnist" ;;
    fashion_mnist) echo "$FASHION_ARGS|$FASHION_METHODS|0,1|fashion_mnist-resnet18_mnist" ;;
    smoke) echo "dataset=digits trainer.epochs=1 dataset.max_train_examples=256|$MNIST_METHODS|0|digits-small_cnn" ;;
    *) echo "unknown setting $1; choose mnist_5k or fashion_mnist" >&2; exit 2 ;;
  esac
}

run_one() {  # setting-folder method seed overrides...
  local setting=$1 method=$2 seed=$3
  shift 3
  local suffix
  suffix=$(printf '%s\n' "$@" | sed -n 's/^suffix=//p')
  local folder="$RESULTS/$setting/$method/seed$seed${suffix:+-$suffix}"
  local args=("$@" "schedule=${method%%-*}" "opt=${method#*-}" "seed=$seed" trainer.threads=1
              trainer.keep_checkpoint=false "paths.results_dir=$RESULTS")
  if [[ -f "$folder/run.json" ]] && grep -Eq '"status": "(completed|diverged)"' "$folder/run.json"; then
    echo "skip $folder (finished)"
  elif [[ -f "$folder/run.json" ]]; then
    "$REPRO" run "${args[@]}" "resume=$folder"
  else
    "$REPRO" run "${args[@]}"
  fi
}
export -f run_one
export REPRO RESULTS

copy_figures() {  # setting name, setting folder, overrides: copy the comparison PNGs into $PLOTS
  local suffix
  # shellcheck disable=SC2086  # the overrides are separate words
  suffix=$(printf '%s\n' $3 | sed -n 's/^suffix=//p')
  for figure in comparison range_test_peer; do
    cp "$RESULTS/$2/comparison${suffix:+-$suffix}/$figure.png" "$PLOTS/${figure}_$1${suffix:+_$suffix}.png"
  done
}

for setting in $SETTINGS; do
  [[ ${SMOKE:-0} == 1 ]] && setting=smoke
  IFS='|' read -r overrides methods seeds folder <<< "$(setting_args "$setting")"
  for seed in ${seeds//,/ }; do
    for method in ${methods//,/ }; do
      echo "$folder $method $seed $overrides"
    done
  done | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@" > /dev/null 2>&1 || echo "failed: $*"' _
  # shellcheck disable=SC2086  # the overrides are separate words
  "$REPRO" compare --read-only --opt momentum --methods "$methods" --seeds "$seeds" $overrides \
    trainer.threads=1 "paths.results_dir=$RESULTS"
  [[ ${SMOKE:-0} == 1 ]] && break
  copy_figures "$setting" "$folder" "$overrides"
done
echo "comparisons finished"
