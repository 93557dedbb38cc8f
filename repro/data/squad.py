"""SQuAD v1.1 question answering data: loading and windowed features for BERT-style models.

Examples come from the original SQuAD v1.1 JSON files or from the `datasets` hub. Features follow
the usual BERT recipe: `[CLS] question [SEP] context window [SEP]`, where a long context is split
into overlapping windows. Training labels are start and end token positions (end inclusive). A
window that does not contain the whole answer points both labels at the CLS token (position 0).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)

SQUAD_URL = "https://rajpurkar.github.io/SQuAD-explorer/"
SPECIAL_TOKENS_IN_PAIR = 3  # [CLS] question [SEP] context [SEP]


@dataclass
class SquadExample:
    """One question with its context paragraph and reference answers (character offsets)."""

    id: str
    title: str
    context: str
    question: str
    answers: list[str]
    answer_starts: list[int]

    def target(self) -> dict:
        """The reference in the format torchmetrics' SQuAD metric expects."""
        return {"id": self.id, "answers": {"text": list(self.answers), "answer_start": list(self.answer_starts)}}


@dataclass
class SquadSplits:
    """Training and evaluation questions of one setting."""

    train: list[SquadExample]
    eval: list[SquadExample]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

def read_squad_json(path: str | Path, key: str) -> list[SquadExample]:
    """Read a SQuAD v1.1 JSON file (`{"data": [{"title", "paragraphs": [...]}]}`).

    `key` is the config key that names the file, used in error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{key}={path}: SQuAD file not found; download train-v1.1.json and dev-v1.1.json "
                        f"from {SQUAD_URL} and set {key} to its path")
    try:
        with open(path, encoding="utf-8") as handle:
            articles = json.load(handle)["data"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{key}={path}: not a SQuAD v1.1 JSON file ({type(error).__name__}: {error}); "
                        "expected an object with a 'data' list of articles") from error

    examples = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                examples.append(SquadExample(
                    id=qa["id"], title=article.get("title", ""), context=paragraph["context"],
                    question=qa["question"], answers=[answer["text"] for answer in qa["answers"]],
                    answer_starts=[answer["answer_start"] for answer in qa["answers"]],
                ))
    if not examples:
        raise DataError(f"{key}={path}: the file contains no questions")
    return examples


def load_squad_hub(name: str, split: str, cache_dir: str) -> list[SquadExample]:
    """Load one split of SQuAD v1.1 through `datasets.load_dataset` (downloads once into `cache_dir`)."""
    import datasets

    try:
        table = datasets.load_dataset(name, split=split, cache_dir=cache_dir)
    except (OSError, ConnectionError, ValueError, datasets.exceptions.DatasetsError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataError(
            f"loading SQuAD {split} split {name!r} from the Hugging Face hub failed ({first_line}); check the "
            f"network, or download train-v1.1.json and dev-v1.1.json from {SQUAD_URL} and set "
            "dataset.train_file and dataset.eval_file"
        ) from error
    return [SquadExample(id=row["id"], title=row["title"], context=row["context"], question=row["question"],
                         answers=list(row["answers"]["text"]), answer_starts=list(row["answers"]["answer_start"]))
            for row in table]


def _check_limit(dataset_cfg, key: str) -> int | None:
    limit = dataset_cfg.get(key)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ConfigError(f"dataset.{key}={limit!r} is invalid; use null (all) or an integer >= 1")
    return limit


def load_squad(dataset_cfg) -> SquadSplits:
    """Load the training and evaluation questions that `dataset_cfg` names.

    A split is read from its JSON file when `train_file` / `eval_file` is set, otherwise from the
    hub. `max_test_examples` keeps the first questions of the evaluation split. (The training
    limit `max_train_examples` counts windows, and build_components applies it after tokenizing.)
    """
    if dataset_cfg.train_file:
        train = read_squad_json(dataset_cfg.train_file, "dataset.train_file")
    else:
        train = load_squad_hub(dataset_cfg.hub_name, "train", dataset_cfg.cache_dir)
    if dataset_cfg.eval_file:
        evaluation = read_squad_json(dataset_cfg.eval_file, "dataset.eval_file")
    else:
        evaluation = load_squad_hub(dataset_cfg.hub_name, "validation", dataset_cfg.cache_dir)

    eval_limit = _check_limit(dataset_cfg, "max_test_examples")
    if eval_limit is not None:
        evaluation = evaluation[:eval_limit]
    log.info("SQuAD: %d training questions, %d evaluation questions", len(train), len(evaluation))
    return SquadSplits(train, evaluation)


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------

@dataclass
class WindowConfig:
    """How questions and contexts become fixed-length model inputs, all lengths in tokens.

    `doc_stride` is the overlap between neighbouring windows of one context (the `stride` of a
    fast tokenizer), so windows start every `context room - doc_stride` tokens.
    """

    max_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64

    def check(self) -> None:
        room = self.max_length - self.max_query_length - SPECIAL_TOKENS_IN_PAIR
        if self.max_query_length < 1 or room < 1:
            raise ConfigError(f"dataset.max_length={self.max_length} leaves no room for the context after "
                              f"dataset.max_query_length={self.max_query_length}; raise max_length or lower "
                              "max_query_length")
        if not 0 <= self.doc_stride < room:
            raise ConfigError(f"dataset.doc_stride={self.doc_stride} must lie in [0, {room}) for max_length "
                              f"{self.max_length} and max_query_length {self.max_query_length}; lower doc_stride")


@dataclass
class QAFeatures:
    """Tokenized windows, one row per window.

    `example_index[i]` is the position in the example list of the question that window i belongs
    to. `offsets[i, t]` is the character span of token t in that question's context, (-1, -1) for
    question, special and padding tokens. Start and end positions label the first answer.
    """

    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    attention_mask: torch.Tensor
    start_positions: torch.Tensor
    end_positions: torch.Tensor
    example_index: torch.Tensor
    offsets: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: torch.Tensor) -> QAFeatures:
        return QAFeatures(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))


class QATrainSet(Dataset):
    """Training windows as a map-style dataset of dicts (the keys a BERT QA model takes)."""

    KEYS = ("input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions")

    def __init__(self, features: QAFeatures):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: getattr(self.features, key)[index] for key in self.KEYS}


def _truncate_questions(questions: list[str], tokenizer, max_query_length: int) -> list[str]:
    """Cut each question after `max_query_length` tokens so that every window has room for context."""
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    truncated = []
    for question, offsets in zip(questions, encoded["offset_mapping"]):
        truncated.append(question[:offsets[max_query_length - 1][1]] if len(offsets) > max_query_length else question)
    return truncated


def _label_window(offsets: np.ndarray, context_mask: np.ndarray, answer_start: int, answer_end: int) -> tuple[int, int]:
    """Token positions (start, end inclusive) of the character span [answer_start, answer_end), or (0, 0).

    The start is the last context token that begins at or before the answer's first character,
    and the end the first context token that ends at or after its last character. So an answer
    that starts or ends inside a word piece is widened to whole tokens.
    """
    context_tokens = np.flatnonzero(context_mask)
    if offsets[context_tokens[0], 0] > answer_start or offsets[context_tokens[-1], 1] < answer_end:
        return 0, 0  # the answer is not (entirely) inside this window
    token_starts = offsets[context_tokens, 0]
    token_ends = offsets[context_tokens, 1]
    start = context_tokens[np.flatnonzero(token_starts <= answer_start)[-1]]
    end = context_tokens[np.flatnonzero(token_ends >= answer_end)[0]]
    return int(start), int(end)


def encode_examples(examples: list[SquadExample], tokenizer, window: WindowConfig) -> QAFeatures:
    """Tokenize questions with their contexts into padded windows and label each window."""
    window.check()
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"the tokenizer {type(tokenizer).__name__} is not a fast tokenizer; character offsets "
                          "need one (a folder with tokenizer.json, or vocab.txt for BERT)")
    # Some SQuAD questions begin with runs of spaces; they only waste tokens.
    questions = _truncate_questions([example.question.lstrip() for example in examples], tokenizer,
                                    window.max_query_length)
    encoded = tokenizer(
        questions, [example.context for example in examples], truncation="only_second",
        max_length=window.max_length, stride=window.doc_stride, return_overflowing_tokens=True,
        return_offsets_mapping=True, return_token_type_ids=True, padding="max_length",
    )

    count = len(encoded["input_ids"])
    offsets = np.full((count, window.max_length, 2), -1, dtype=np.int32)
    starts = np.zeros(count, dtype=np.int64)
    ends = np.zeros(count, dtype=np.int64)
    example_index = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
    for row in range(count):
        context_mask = np.array([sequence == 1 for sequence in encoded.sequence_ids(row)])
        row_offsets = np.asarray(encoded["offset_mapping"][row], dtype=np.int32)
        offsets[row][context_mask] = row_offsets[context_mask]
        example = examples[example_index[row]]
        if example.answers:
            answer_start = example.answer_starts[0]
            starts[row], ends[row] = _label_window(offsets[row], context_mask, answer_start,
                                                   answer_start + len(example.answers[0]))

    return QAFeatures(
        input_ids=torch.tensor(encoded["input_ids"], dtype=torch.int32),
        token_type_ids=torch.tensor(encoded["token_type_ids"], dtype=torch.int32),
        attention_mask=torch.tensor(encoded["attention_mask"], dtype=torch.int32),
        start_positions=torch.from_numpy(starts),
        end_positions=torch.from_numpy(ends),
        example_index=torch.from_numpy(example_index),
        offsets=torch.from_numpy(offsets),
    )
