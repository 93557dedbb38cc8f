#!/usr/bin/env bash
# Every paper setting, for every optimizer its recipe defines, under the baseline schedule and
# AutoLR, seeds 0-2, as SLURM jobs through hydra-submitit-launcher: one job per sweep point.
# Jobs run data parallel on the GPUs of one node. A requeued job (preempted, or past its time
# limit) finds its unfinished run folder through trainer.auto_resume and continues from the
# last checkpoint. The results folder must be on a file system that every node can read.
#   PARTITION=gpu scripts/sweep_paper_slurm.sh
#   PARTITION=gpu SETTINGS="cifar10 mnist" SEEDS=0 scripts/sweep_paper_slurm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPRO=${REPRO:-.venv/bin/repro}
PARTITION=${PARTITION:-null}      # SLURM partition; null uses the cluster's default
SEEDS=${SEEDS:-0,1,2}
SETTINGS=${SETTINGS:-"cifar10 imagenet mnist fashion_mnist iwslt14 squad"}
RESULTS=${RESULTS:-results}

# Optimizers, GPUs per job and time limit (minutes) of each paper setting.
declare -A OPTS=([cifar10]=sgd,momentum,adam [imagenet]=sgd,momentum,adam [mnist]=sgd,momentum,adam
                 [fashion_mnist]=sgd,momentum,adam [iwslt14]=adam [squad]=adam)
declare -A GPUS=([cifar10]=1 [imagenet]=8 [mnist]=1 [fashion_mnist]=1 [iwslt14]=1 [squad]=2)
declare -A MINUTES=([cifar10]=720 [imagenet]=2880 [mnist]=240 [fashion_mnist]=240 [iwslt14]=720 [squad]=360)

for setting in $SETTINGS; do
  gpus=${GPUS[$setting]}
  echo "submitting $setting: opt=${OPTS[$setting]}, schedule=baseline,autolr, seed=$SEEDS on $gpus GPU(s) per job"
  "$REPRO" run -m hydra/launcher=slurm "hydra.launcher.partition=$PARTITION" \
    "hydra.launcher.gpus_per_node=$gpus" "hydra.launcher.tasks_per_node=$gpus" \
    "hydra.launcher.timeout_min=${MINUTES[$setting]}" \
    "dataset=$setting" "opt=${OPTS[$setting]}" schedule=baseline,autolr "seed=$SEEDS" \
    trainer.auto_resume=true "paths.results_dir=$(realpath "$RESULTS")"
done
