#!/usr/bin/env bash
# Every paper setting, for every optimizer its recipe defines, under the baseline schedule and
# AutoLR, seeds 0-2, on one multi-GPU machine: one run after another, each data parallel on all
# GPUS through torchrun. Rerunning the script skips completed runs and continues unfinished ones
# from their last checkpoint (trainer.auto_resume).
#   GPUS=8 scripts/sweep_paper_local.sh
#   GPUS=2 SETTINGS="cifar10" SEEDS="0" scripts/sweep_paper_local.sh
# Several small runs at once on one machine (CPU-scale settings) go through hydra-joblib-launcher:
#   repro run -m hydra/launcher=joblib_local dataset=mnist_5k opt=sgd,momentum,adam schedule=baseline,autolr
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
GPUS=${GPUS:-$(nvidia-smi --list-gpus 2>/dev/null | wc -l)}
SEEDS=${SEEDS:-"0 1 2"}
SETTINGS=${SETTINGS:-"cifar10 imagenet mnist fashion_mnist iwslt14 squad"}
RESULTS=${RESULTS:-results}
if [[ "$GPUS" -lt 1 ]]; then
  echo "error: no GPU found; set GPUS=N, or run CPU-scale settings with hydra/launcher=joblib_local" >&2
  exit 2
fi

declare -A OPTS=([cifar10]="sgd momentum adam" [imagenet]="sgd momentum adam" [mnist]="sgd momentum adam"
                 [fashion_mnist]="sgd momentum adam" [iwslt14]="adam" [squad]="adam")

for setting in $SETTINGS; do
  for opt in ${OPTS[$setting]}; do
    for schedule in baseline autolr; do
      for seed in $SEEDS; do
        folder="$RESULTS/$setting-"*"/$schedule-$opt/seed$seed"
        if grep -qs '"status": "completed"' $folder/run.json; then
          echo "skip $setting $opt $schedule seed $seed (completed)"
          continue
        fi
        echo "run $setting $opt $schedule seed $seed on $GPUS GPU(s)"
        "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$GPUS" -m repro run \
          "dataset=$setting" "opt=$opt" "schedule=$schedule" "seed=$seed" trainer.auto_resume=true \
          "paths.results_dir=$(realpath "$RESULTS")" || echo "failed: $setting $opt $schedule seed $seed"
      done
    done
  done
done
echo "sweep finished"
