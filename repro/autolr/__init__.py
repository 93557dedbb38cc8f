"""AutoLR as a library: works with any torch.optim.Optimizer and model, no Hydra or CSV needed."""

from .batches import BatchSource, DatasetBatchSource, IterableBatchSource
from .config import AutoLRConfig, RangeTestConfig
from .fit import Decision, QuadraticFit, choose_lr, fit_quadratic
from .range_test import RangeTestResult, run_range_test, suggest_max_lr
from .snapshot import TrainingSnapshot, training_state_nbytes
from .tuner import AutoLR, ExtraCompute, Sample, SearchResult, candidate_lrs, make_train_step

__all__ = [
    "AutoLR", "AutoLRConfig", "RangeTestConfig", "BatchSource", "DatasetBatchSource",
    "IterableBatchSource", "Decision", "QuadraticFit", "choose_lr", "fit_quadratic",
    "RangeTestResult", "run_range_test", "suggest_max_lr", "TrainingSnapshot",
    "training_state_nbytes", "ExtraCompute", "Sample", "SearchResult", "candidate_lrs",
    "make_train_step",
]
