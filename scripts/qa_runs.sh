#!/usr/bin/env bash
# The committed CPU-scale SQuAD runs: MiniLM fine-tuned on half of the SQuAD v1.1 development set
# (dataset=squad_dev_split) with Adam for 2 epochs, under the BERT baseline schedule and under
# AutoLR, then a summary of EM, F1 and throughput from their run.json files.
#   scripts/qa_runs.sh            # both runs, one after the other, then the summary
#   scripts/qa_runs.sh baseline   # one run only (baseline or autolr)
#   scripts/qa_runs.sh summary    # only print the summary of finished runs
# Resumable: a completed run is skipped, and an unfinished one continues from its last checkpoint
# with `resume=<run folder>`. Each run uses one torch thread at the lowest CPU priority, because
# the machine is shared. Measured length with the two runs side by side on 2 cores: 55 minutes
# for the baseline and 65 for AutoLR, plus about 5 minutes of final evaluation each.
set -euo pipefail
cd "$(dirname "$0")/.."
REPRO=${REPRO:-.venv/bin/repro}
RESULTS=${RESULTS:-results}
SEED=${SEED:-0}
export HF_HUB_OFFLINE=1  # everything is local: the data halves and the MiniLM package

# AutoLR options for Adam on a pretrained BERT, which is fine-tuned at LRs around 1e-5 to 1e-4.
# The range test sweeps 1e-6 to 1e-2 (12.5 of its 50 steps per decade) instead of the default
# 1e-5 to 10, whose upper decades a pretrained model does not survive.
AUTOLR_OPTIONS=(schedule.range_test.min_lr=1e-6 schedule.range_test.max_lr=1e-2)

run_one() {
    local schedule=$1
    local folder="$RESULTS/squad_dev_split-minilm/$schedule-adam/seed$SEED"
    local args=(dataset=squad_dev_split opt=adam "schedule=$schedule" "seed=$SEED" trainer.threads=1
                trainer.progress=false "paths.results_dir=$(realpath "$RESULTS")")
    if [[ $schedule == autolr ]]; then
        args+=("${AUTOLR_OPTIONS[@]}")
    fi
    if [[ -f "$folder/run.json" ]] && grep -q '"status": "completed"' "$folder/run.json"; then
        echo "skip $folder (completed)"
    elif [[ -f "$folder/run.json" ]]; then
        echo "+ repro run ${args[*]} resume=$folder" >&2
        nice -n 19 "$REPRO" run "${args[@]}" "resume=$folder"
    else
        echo "+ repro run ${args[*]}" >&2
        nice -n 19 "$REPRO" run "${args[@]}"
    fi
}

summary() {
    # Windows per second count every training window over the whole run, evaluation included,
    # so both runs carry the same evaluation cost. AutoLR's share is its range test and searches.
    RESULTS="$RESULTS" SEED="$SEED" .venv/bin/python - <<'EOF'
import json
import os
from pathlib import Path

import yaml

results, seed = Path(os.environ["RESULTS"]), os.environ["SEED"]
print(f"{'schedule':<9} {'EM':>6} {'F1':>6} {'questions':>9} {'steps':>6} {'time_s':>8} {'windows/s':>9} {'autolr_s':>9} {'autolr %':>8}")
for schedule in ("baseline", "autolr"):
    folder = results / "squad_dev_split-minilm" / f"{schedule}-adam" / f"seed{seed}"
    if not (folder / "run.json").is_file():
        print(f"{schedule:<9} (no run in {folder})")
        continue
    record = json.loads((folder / "run.json").read_text())
    summary = record.get("summary")
    if record.get("status") != "completed" or not summary:
        print(f"{schedule:<9} ({record.get('status')}: {folder})")
        continue
    batch_size = yaml.safe_load((folder / "config.yaml").read_text())["trainer"]["batch_size"]
    final = summary["final_eval"]
    windows_per_s = summary["steps"] * batch_size / summary["time_s"]
    share = 100 * summary["autolr_time_s"] / summary["time_s"]
    print(f"{schedule:<9} {final['em']:6.2f} {final['f1']:6.2f} {final['eval_questions']:9d} {summary['steps']:6d} "
          f"{summary['time_s']:8.0f} {windows_per_s:9.2f} {summary['autolr_time_s']:9.0f} {share:8.1f}")
EOF
}

case "${1:-all}" in
    all) run_one baseline; run_one autolr; summary ;;
    baseline | autolr) run_one "$1" ;;
    summary) summary ;;
    *) echo "usage: scripts/qa_runs.sh [all|baseline|autolr|summary]" >&2; exit 2 ;;
esac
