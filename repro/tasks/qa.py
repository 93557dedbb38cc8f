"""Extractive question answering (SQuAD v1.1): span loss, answer decoding, exact match and F1."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.text import squad as squad_metric

from ..autolr.batches import BatchSource, DatasetBatchSource
from ..data.squad import QAFeatures, QATrainSet, SquadExample, WindowConfig, encode_examples, load_squad
from ..errors import ConfigError
from ..models.qa import load_qa_model
from .base import Task

log = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor,
              end_positions: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean of the start and end cross entropies, the loss BERT's SQuAD fine-tuning minimises."""
    return (F.cross_entropy(start_logits, start_positions, reduction=reduction)
            + F.cross_entropy(end_logits, end_positions, reduction=reduction)) / 2


def trim_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the padding columns that no row of the batch uses.

    Padding tokens are masked out of attention, so the model's outputs on real tokens do not
    change, and a batch of short windows costs less.
    """
    length = int(batch["attention_mask"].sum(dim=1).max())
    return {key: value[:, :length] if value.dim() == 2 else value for key, value in batch.items()}


def best_spans(start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray, n_best: int,
               max_answer_length: int) -> tuple[float, int, int]:
    """The highest-scoring answer span of one window: (score, start token, end token).

    Only context tokens (offset >= 0) count, end >= start, and the span has at most
    `max_answer_length` tokens. The score is start logit + end logit. Returns (-inf, -1, -1)
    when no candidate among the `n_best` starts and ends is valid.
    """
    in_context = offsets[:, 0] >= 0
    start_scores = np.where(in_context, start_logits, -np.inf)
    end_scores = np.where(in_context, end_logits, -np.inf)
    k = min(n_best, len(start_scores))
    starts = np.argsort(start_scores)[::-1][:k]
    ends = np.argsort(end_scores)[::-1][:k]
    length = ends[None, :] - starts[:, None] + 1
    scores = start_scores[starts][:, None] + end_scores[ends][None, :]
    scores = np.where((length >= 1) & (length <= max_answer_length), scores, -np.inf)
    best = np.unravel_index(int(np.argmax(scores)), scores.shape)
    if not np.isfinite(scores[best]):
        return -math.inf, -1, -1
    return float(scores[best]), int(starts[best[0]]), int(ends[best[1]])


def decode_answers(examples: list[SquadExample], features: QAFeatures, start_logits: np.ndarray,
                   end_logits: np.ndarray, n_best: int = 20, max_answer_length: int = 30) -> dict[str, str]:
    """Answer text per question id: the best span over all windows of its context.

    The text is cut from the original context with the tokens' character offsets, so spacing and
    case match the context. A question with no valid span gets the empty string.
    """
    best: dict[int, tuple[float, int, int, int]] = {}
    offsets = features.offsets.numpy()
    for row, example_index in enumerate(features.example_index.tolist()):
        score, start, end = best_spans(start_logits[row], end_logits[row], offsets[row], n_best, max_answer_length)
        if example_index not in best or score > best[example_index][0]:
            best[example_index] = (score, row, start, end)

    answers = {}
    for example_index, (score, row, start, end) in best.items():
        example = examples[example_index]
        if start < 0:
            answers[example.id] = ""
        else:
            answers[example.id] = example.context[offsets[row, start, 0]:offsets[row, end, 1]]
    return answers


def squad_scores(predictions: dict[str, str], examples: list[SquadExample]) -> dict[str, float]:
    """Exact match and F1 in percent, as the official SQuAD v1.1 evaluation script defines them.

    torchmetrics (checked against hand-computed values in the tests) lower-cases, strips
    punctuation, the articles a/an/the and extra white space, then takes the maximum over the
    reference answers. A question missing from `predictions` counts as the empty answer.
    """
    # NOTE: when a reference normalises to nothing, torchmetrics scores a prediction that also
    # normalises to nothing F1 = 1, where the official v1.1 script scores 0. Three development-set
    # references are ".", so F1 can differ from the official script only on those questions.
    preds = [{"id": example.id, "prediction_text": predictions.get(example.id, "")} for example in examples]
    scores = squad_metric(preds, [example.target() for example in examples])
    return {"em": float(scores["exact_match"]), "f1": float(scores["f1"])}


class QATask(Task):
    """A BERT-style encoder fine-tuned to predict answer spans in SQuAD v1.1 contexts.

    Evaluation during training (epochs.csv) uses `dataset.periodic_eval_examples` questions of the
    evaluation split when that is set, to keep CPU-scale runs short. `final_evaluate` always scores
    the whole split, and run.json stores that result.
    """

    def __init__(self, cfg, device: torch.device):
        super().__init__(device)
        data_cfg = cfg.dataset
        self.model, self.tokenizer = load_qa_model(cfg.model)
        self.model.to(device)
        splits = load_squad(data_cfg)
        window = WindowConfig(data_cfg.max_length, data_cfg.doc_stride, data_cfg.max_query_length)
        if data_cfg.max_length > self.model.config.max_position_embeddings:
            raise ConfigError(f"dataset.max_length={data_cfg.max_length} exceeds the "
                              f"{self.model.config.max_position_embeddings} positions of {cfg.model.name}; lower it")

        log.info("tokenizing SQuAD into windows of %d tokens (overlap %d)", window.max_length, window.doc_stride)
        self.train_set = QATrainSet(encode_examples(splits.train, self.tokenizer, window))
        self.eval_examples = splits.eval
        # NOTE: evaluation reads `eval_features`, never `test_set`. build_components may wrap
        # `test_set` to apply dataset.max_test_examples to windows, but load_squad has already
        # applied that limit to whole questions, which answer decoding needs.
        self.eval_features = encode_examples(splits.eval, self.tokenizer, window)
        self.test_set = self.eval_features
        self.periodic_examples, self.periodic_features = self._periodic_subset(data_cfg)
        log.info("SQuAD windows: %d for training, %d for evaluation (%d in each periodic evaluation)",
                 len(self.train_set), len(self.eval_features), len(self.periodic_features))

        self.n_best = data_cfg.n_best
        self.max_answer_length = data_cfg.max_answer_length
        self.eval_batch_size = cfg.trainer.eval_batch_size
        self.metric_columns = ("eval_loss", "em", "f1")

    def _periodic_subset(self, data_cfg) -> tuple[list[SquadExample], QAFeatures]:
        """Select the first `periodic_eval_examples` evaluation questions and their windows (all when null)."""
        limit = data_cfg.periodic_eval_examples
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ConfigError(f"dataset.periodic_eval_examples={limit!r} is invalid; use null (all) or an integer >= 1")
        if limit is None or limit >= len(self.eval_examples):
            return self.eval_examples, self.eval_features
        rows = torch.nonzero(self.eval_features.example_index < limit).flatten()
        return self.eval_examples[:limit], self.eval_features.select(rows)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Trim unused padding, widen the int32 storage to int64 and move to the device."""
        return {key: value.to(self.device, dtype=torch.long, non_blocking=True)
                for key, value in trim_padding(batch).items()}

    def loss(self, model, batch) -> torch.Tensor:
        outputs = model(**{key: batch[key] for key in MODEL_INPUTS})
        return span_loss(outputs.start_logits, outputs.end_logits, batch["start_positions"], batch["end_positions"])

    def batch_source(self, batch_size: int) -> BatchSource:
        return DatasetBatchSource(self.train_set, batch_size, to_device=self.to_device)

    @torch.no_grad()
    def _logits(self, model, features: QAFeatures) -> tuple[np.ndarray, np.ndarray, float]:
        """Start and end logits of every window (-inf past each chunk's padding) and the mean span loss."""
        was_training = model.training
        model.eval()
        count, length = features.input_ids.shape
        start_logits = np.full((count, length), -np.inf, dtype=np.float32)
        end_logits = np.full((count, length), -np.inf, dtype=np.float32)
        loss_sum = 0.0
        for first in range(0, count, self.eval_batch_size):
            rows = slice(first, first + self.eval_batch_size)
            batch = self.to_device({"input_ids": features.input_ids[rows], "token_type_ids": features.token_type_ids[rows],
                                    "attention_mask": features.attention_mask[rows],
                                    "start_positions": features.start_positions[rows],
                                    "end_positions": features.end_positions[rows]})
            outputs = model(**{key: batch[key] for key in MODEL_INPUTS})
            loss_sum += float(span_loss(outputs.start_logits, outputs.end_logits, batch["start_positions"],
                                        batch["end_positions"], reduction="sum"))
            width = outputs.start_logits.shape[1]
            start_logits[rows, :width] = outputs.start_logits.float().cpu().numpy()
            end_logits[rows, :width] = outputs.end_logits.float().cpu().numpy()
        model.train(was_training)
        return start_logits, end_logits, loss_sum / max(count, 1)

    def _score(self, model, examples: list[SquadExample], features: QAFeatures) -> dict[str, float]:
        start_logits, end_logits, eval_loss = self._logits(model, features)
        answers = decode_answers(examples, features, start_logits, end_logits, self.n_best, self.max_answer_length)
        return {"eval_loss": eval_loss, **squad_scores(answers, examples)}

    def evaluate(self, model) -> dict[str, float]:
        """Span loss of the evaluation windows, EM and F1 on the periodic evaluation questions."""
        return self._score(model, self.periodic_examples, self.periodic_features)

    def final_evaluate(self, model) -> dict[str, float]:
        """EM and F1 on every question of the evaluation split."""
        metrics = self._score(model, self.eval_examples, self.eval_features)
        metrics["eval_questions"] = len(self.eval_examples)
        log.info("final evaluation on %d questions: EM %.2f F1 %.2f", len(self.eval_examples), metrics["em"],
                 metrics["f1"])
        return metrics
