#!/usr/bin/env bash
# Produce the committed AutoLR study outputs under results/, at CPU scale on real data.
#   scripts/studies.sh mnist_5k        range test, fit study (3 points) and noise study: MNIST 5k, ResNet-18, SGD
#   scripts/studies.sh fashion_mnist   the same three on full Fashion-MNIST, with a compressed 2-epoch schedule
#   scripts/studies.sh plateau         constant-LR run and tenfold-drop run on MNIST 5k
#   scripts/studies.sh all             all of the above, one after the other
# Every command runs at the lowest CPU priority on one thread, because the machine is shared.
# Fashion-MNIST is read offline from the files of the Debian package dataset-fashion-mnist.
set -euo pipefail
cd "$(dirname "$0")/.."
REPRO=${REPRO:-.venv/bin/repro}
FASHION_ROOT=${FASHION_ROOT:-/usr/share/datasets/fashion-mnist}
# Epoch at which the MNIST 5k plateau run drops its LR tenfold, read off the constant run's
# training loss (see docs/studies.md).
PLATEAU_DROP_EPOCH=${PLATEAU_DROP_EPOCH:-5}

run() {
    echo "+ repro $*" >&2
    nice -n 19 "$REPRO" "$@" trainer.threads=1 trainer.progress=false
}

mnist_5k() {
    local common=(dataset=mnist_5k opt=sgd)
    run range-test "${common[@]}"
    # Training points at 10%, 50% and 90% of the 12-epoch recipe: epochs 1.2, 6 and 10.8, at
    # LR 0.1, 0.01 and 0.001 because the recipe drops the LR tenfold at epochs 6 and 9.
    run fit-study "${common[@]}"
    # Noise at two states: epoch 7.5 (LR 0.01, after the first drop) and epoch 1.2 (LR 0.1).
    run noise-study "${common[@]}" study.noise.epoch=7.5
    run noise-study "${common[@]}" study.noise.epoch=1.2 suffix=early
}

fashion_mnist() {
    # Full Fashion-MNIST: 60,000 training images, 468 steps of 128 per epoch. The schedule is
    # compressed to 2 epochs with one tenfold drop at epoch 1, so that the early (epoch 0.1),
    # middle (0.5) and late (1.25, after the drop) points fit a shared 2-core CPU.
    local common=(dataset=fashion_mnist dataset.root="$FASHION_ROOT" dataset.download=false opt=sgd
                  trainer.epochs=2 'schedule.milestones=[1]')
    run fit-study "${common[@]}" 'study.fit.epochs=[0.1,0.5,1.25]'
    run noise-study "${common[@]}" study.noise.epoch=0.5
    # No size up to 32 met the threshold above, so the same state once more with sizes up to 64.
    run noise-study "${common[@]}" study.noise.epoch=0.5 study.noise.max_superbatch=64 suffix=max64
    run range-test "${common[@]}"
}

plateau() {
    run run experiment=plateau_mnist_5k_constant trainer.keep_checkpoint=false
    run run experiment=plateau_mnist_5k_drop plateau.drop_epoch="$PLATEAU_DROP_EPOCH" \
        suffix="drop$PLATEAU_DROP_EPOCH" trainer.keep_checkpoint=false
}

case "${1:-all}" in
    mnist_5k) mnist_5k ;;
    fashion_mnist) fashion_mnist ;;
    plateau) plateau ;;
    all) mnist_5k; fashion_mnist; plateau ;;
    *) echo "usage: scripts/studies.sh [mnist_5k|fashion_mnist|plateau|all]" >&2; exit 2 ;;
esac
