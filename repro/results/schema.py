"""Column lists of every CSV a run writes, declared once. Figures read these files only.

epochs.csv adds the task's metric columns (e.g. test_loss, test_acc, test_top5) after
`train_loss`; every other file has the fixed columns below.
"""

# One row per epoch. step: training steps done; lr: LR of the epoch's last step; time_s:
# cumulative wall time of the run (training, evaluation and AutoLR); autolr_*: cumulative extra
# compute (seconds, forward+backward steps, forward-only batches), 0 for baselines.
EPOCH_HEAD = ("epoch", "step", "lr", "train_loss")
EPOCH_TAIL = ("time_s", "autolr_time_s", "autolr_extra_steps", "autolr_extra_forward")

# One row every `trainer.log_every` steps. loss: that step's loss; loss_avg: mean over the window.
STEP_COLUMNS = ("step", "epoch", "lr", "loss", "loss_avg")

# One row per sampled loss of an AutoLR search. role: fit, test or verify; finite: False for a
# diverged candidate (never fitted); a, b, c: fitted L(lr) = a*lr^2 + b*lr + c (empty without a
# fit); proposal: the clamped minimum; decision: fit, fit_clamped, best_sample or keep.
AUTOLR_COLUMNS = ("search_id", "step", "epoch", "previous_lr", "max_lr", "candidate_lr", "loss", "role",
                  "finite", "a", "b", "c", "test_error", "proposal", "chosen_lr", "decision", "reason")

# One row per LR range-test step.
RANGE_TEST_COLUMNS = ("step", "lr", "loss", "smoothed_loss")


def epoch_columns(metric_columns) -> tuple[str, ...]:
    return EPOCH_HEAD + tuple(metric_columns) + EPOCH_TAIL

# `repro fit-study`: one row per measured sample. fit_id numbers the training points studied;
# role: fit (used by the quadratic), test (held out) or true_at_minimum (the loss measured at
# the fitted minimum); a, b, c, minimum_lr, minimum_inside, test_error describe that point's fit.
FIT_STUDY_COLUMNS = ("fit_id", "epoch", "step", "lr", "loss", "role", "finite", "a", "b", "c", "minimum_lr",
                     "minimum_inside", "test_error")

# `repro noise-study`: one row per superbatch size (in mini-batches): mean and standard deviation
# of the loss estimate over `draws` independent draws at one fixed model state.
NOISE_STUDY_COLUMNS = ("superbatch", "draws", "mean_loss", "std_loss")
