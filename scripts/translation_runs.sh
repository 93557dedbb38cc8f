#!/usr/bin/env bash
# The committed CPU-scale translation runs: the small Transformer on Multi30k German-English
# (dataset=multi30k model=transformer_small) with Adam, under the inverse square-root baseline and
# under AutoLR, then a summary of test BLEU and validation perplexity from their result files.
#   scripts/translation_runs.sh            # both runs, one after the other, then the summary
#   scripts/translation_runs.sh baseline   # one run only (baseline or autolr)
#   scripts/translation_runs.sh summary    # only print the summary of finished runs
# Resumable: a completed run is skipped, and an unfinished one continues from its last checkpoint
# (saved every epoch) with `resume=<run folder>`, so an interrupted session loses at most one
# epoch. Each run uses THREADS torch threads (default 1) at the lowest CPU priority, because the
# machine is shared. Measured length with the two runs side by side on 2 cores and one thread
# each: 54 minutes for the baseline and 59 for AutoLR (docs/translation.md, "CPU sizing").
set -euo pipefail
cd "$(dirname "$0")/.."
REPRO=${REPRO:-.venv/bin/repro}
RESULTS=${RESULTS:-results}
SEED=${SEED:-0}
THREADS=${THREADS:-1}
export HF_HUB_OFFLINE=1  # everything is local: the Multi30k files and the cached tokenizer

# AutoLR's range test sweeps 1e-5 to 0.1 (50 steps, 12.5 per decade) instead of the default 1e-5
# to 10. Transformer recipes train with Adam at LRs near 1e-3 (5e-4 and 1e-3 here), so the
# default's top two decades would only add steps spent diverging.
AUTOLR_OPTIONS=(schedule.range_test.max_lr=0.1)

run_one() {
    local schedule=$1
    local folder="$RESULTS/multi30k-transformer_small/$schedule-adam/seed$SEED"
    local args=(dataset=multi30k model=transformer_small opt=adam "schedule=$schedule" "seed=$SEED"
                "trainer.threads=$THREADS" trainer.progress=false "paths.results_dir=$(realpath "$RESULTS")")
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
    RESULTS="$RESULTS" SEED="$SEED" .venv/bin/python - <<'PYTHON'
import json
import os
from pathlib import Path

import pandas as pd

results, seed = Path(os.environ["RESULTS"]), os.environ["SEED"]
print(f"{'schedule':<9} {'BLEU':>6} {'valid_ppl':>9} {'best_ppl':>8} {'epochs':>6} {'steps':>6} {'time_s':>7} "
      f"{'autolr_s':>8} {'autolr %':>8}")
for schedule in ("baseline", "autolr"):
    folder = results / "multi30k-transformer_small" / f"{schedule}-adam" / f"seed{seed}"
    if not (folder / "run.json").is_file():
        print(f"{schedule:<9} (no run in {folder})")
        continue
    record = json.loads((folder / "run.json").read_text())
    summary = record.get("summary")
    if record.get("status") != "completed" or not summary:
        print(f"{schedule:<9} ({record.get('status')}: {folder})")
        continue
    epochs = pd.read_csv(folder / "epochs.csv")
    share = 100 * summary["autolr_time_s"] / summary["time_s"]
    print(f"{schedule:<9} {summary['final_eval']['test_bleu']:6.2f} {epochs['valid_ppl'].iloc[-1]:9.2f} "
          f"{epochs['valid_ppl'].min():8.2f} {summary['epochs_done']:6d} {summary['steps']:6d} "
          f"{summary['time_s']:7.0f} {summary['autolr_time_s']:8.0f} {share:8.1f}")
PYTHON
}

case "${1:-all}" in
    all) run_one baseline; run_one autolr; summary ;;
    baseline | autolr) run_one "$1" ;;
    summary) summary ;;
    *) echo "usage: scripts/translation_runs.sh [all|baseline|autolr|summary]" >&2; exit 2 ;;
esac
