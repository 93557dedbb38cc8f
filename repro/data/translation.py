"""Parallel text for translation: local or downloaded corpora, a cached BPE tokenizer, token batches.

A corpus is three splits (train, valid, test) of sentence pairs, read from one file per split and
language (`<split>.<lang>` or `<split>.<lang>.gz`, one sentence a line). A corpus from the
Hugging Face hub is written once into that layout, so every later run reads local files.

The subword tokenizer is a byte-level BPE shared by both languages, trained on the training split
with the `tokenizers` library. Byte-level BPE never produces an unknown token and decodes back to
the exact input text, so BLEU is computed on the original detokenized text. A joint vocabulary is
the usual choice for German-English (the public IWSLT'14 recipe learns one joint BPE), and it
would let a model share encoder and decoder embeddings.

Training batches hold up to `max_tokens` padded tokens per side, grouped by length so that little
padding is wasted (length bucketing). The batch boundaries are fixed once, so every epoch has the
same number of steps. Each epoch reshuffles which sentences of equal length share a batch, and
the order of the batches, with the epoch's torch.Generator only.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .download import download_guard

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")

# Special tokens, in this order at ids 0-3 of every vocabulary.
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)

# Bump when the tokenizer recipe changes, so cached tokenizers from an older recipe are not reused.
TOKENIZER_RECIPE = "bytelevel-bpe-v1"


# -- reading parallel text ------------------------------------------------------------------------


@dataclass
class ParallelText:
    """Aligned source and target sentences of one split."""

    source: list[str]
    target: list[str]

    def __len__(self) -> int:
        return len(self.source)

    def head(self, count: int | None) -> ParallelText:
        """Return the first `count` pairs (all pairs when `count` is None)."""
        if count is None:
            return self
        return ParallelText(self.source[:count], self.target[:count])


def split_file_names(dataset_cfg) -> dict[str, str]:
    """Map each split (train, valid, test) to its file stem, e.g. valid -> val for Multi30k."""
    names = dict(dataset_cfg.get("splits") or {})
    unknown = set(names) - set(SPLITS)
    if unknown:
        raise ConfigError(f"dataset.splits has unknown keys {sorted(unknown)}; use train, valid and test, "
                          "e.g. dataset.splits.valid=val")
    return {split: str(names.get(split, split)) for split in SPLITS}


def expected_files(stems: dict[str, str], languages: Sequence[str]) -> list[str]:
    return [f"{stems[split]}.{lang}" for split in SPLITS for lang in languages]


def find_text_file(root: Path, stem: str, lang: str) -> Path | None:
    """Return `root/<stem>.<lang>`, or its .gz, whichever exists (None if neither)."""
    for candidate in (root / f"{stem}.{lang}", root / f"{stem}.{lang}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_lines(path: Path) -> list[str]:
    """Read one sentence per line from a plain or gzipped UTF-8 file, without line ends."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="\n") as handle:
            return [line.rstrip("\r\n") for line in handle]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path} ({error}); expected UTF-8 text, one sentence a line, "
                        "plain or gzipped") from error


def read_local_corpus(root: Path, stems: dict[str, str], src_lang: str, tgt_lang: str) -> dict[str, ParallelText]:
    """Read the three splits from `root`. Raises DataError naming the folder and the missing files."""
    wanted = expected_files(stems, (src_lang, tgt_lang))
    if not root.is_dir():
        raise DataError(f"translation data folder {root} not found; expected the files {', '.join(wanted)} "
                        "(plain or .gz) there; set dataset.root=<folder>")
    missing = [name for name in wanted if find_text_file(root, *name.rsplit(".", 1)) is None]
    if missing:
        raise DataError(f"missing {', '.join(missing)} (plain or .gz) in the translation data folder {root}, "
                        f"which needs {', '.join(wanted)}; set dataset.splits.<split>=<file stem> if the names differ")

    corpus = {}
    for split in SPLITS:
        source_path = find_text_file(root, stems[split], src_lang)
        target_path = find_text_file(root, stems[split], tgt_lang)
        source, target = read_lines(source_path), read_lines(target_path)
        if len(source) != len(target):
            raise DataError(f"{source_path} has {len(source)} lines but {target_path} has {len(target)}; "
                            "the two sides of a split must be aligned line by line")
        if not source:
            raise DataError(f"{source_path} is empty; every split needs at least one sentence pair")
        corpus[split] = ParallelText(source, target)
    return corpus


# -- downloading from the Hugging Face hub --------------------------------------------------------


def download_hub_corpus(dataset_cfg, root: Path, stems: dict[str, str]) -> None:
    """Fetch `dataset_cfg.hub` with the `datasets` library and write its splits into `root`.

    Raises DataError with the folder and files to provide by hand when the download fails.
    """
    hub = dataset_cfg.hub
    src_lang, tgt_lang = dataset_cfg.src_lang, dataset_cfg.tgt_lang
    manual = f"put {', '.join(expected_files(stems, (src_lang, tgt_lang)))} (plain or .gz) into {root}"
    log.info("downloading %s (%s) with the datasets library into %s", hub.path, hub.get("name"), root)
    # download_guard bounds each socket operation and turns OSError (ConnectionError, the hub's
    # HTTP and not-found errors) and RuntimeError into a one-line DataError.
    with download_guard(hub.path, str(root), manual):
        import datasets

        try:
            loaded = datasets.load_dataset(hub.path, hub.get("name"))
        except ValueError as error:  # e.g. an unknown config name
            raise RuntimeError(f"{type(error).__name__}: {error}") from error

    try:
        root.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            hub_split = hub.splits[split]
            if hub_split not in loaded:
                raise DataError(f"{hub.path} has no split {hub_split!r} (it has {', '.join(loaded)}); "
                                f"set dataset.hub.splits.{split}")
            pairs = loaded[hub_split][hub.get("field", "translation")]
            for lang in (src_lang, tgt_lang):
                lines = [" ".join(pair[lang].split()) for pair in pairs]  # one line per sentence
                _write_atomic(root / f"{stems[split]}.{lang}", "\n".join(lines) + "\n")
    except OSError as error:
        raise DataError(f"cannot write the downloaded corpus into {root} ({error}); "
                        "set dataset.root to a writable folder") from error


def _write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a concurrent reader never sees half a file."""
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(partial, 0o644)  # mkstemp creates files readable by their owner only
    os.replace(partial, path)


def load_corpus(dataset_cfg) -> dict[str, ParallelText]:
    """Read the corpus from `dataset_cfg.root`, downloading it first when it is missing and allowed."""
    root = Path(dataset_cfg.root).expanduser()
    stems = split_file_names(dataset_cfg)
    src_lang, tgt_lang = dataset_cfg.src_lang, dataset_cfg.tgt_lang
    complete = all(find_text_file(root, *name.rsplit(".", 1)) is not None
                   for name in expected_files(stems, (src_lang, tgt_lang)))
    if not complete and dataset_cfg.get("download") and dataset_cfg.get("hub"):
        download_hub_corpus(dataset_cfg, root, stems)
    return read_local_corpus(root, stems, src_lang, tgt_lang)


# -- tokenizer ------------------------------------------------------------------------------------


def _file_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha1()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def tokenizer_cache_dirs(root: Path, data_dir: Path, dataset_name: str) -> list[Path]:
    """Folders searched for a cached tokenizer: beside the data first, then under paths.data_dir."""
    return [root / "tokenizers", data_dir / "tokenizers" / dataset_name]


def _is_writable(folder: Path) -> bool:
    """True when `folder` accepts new files and its permission bits do not mark it read-only.

    The mode check keeps a superuser, for whom os.access always succeeds, out of folders that
    were made read-only on purpose (shared data).
    """
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(folder, os.W_OK)


def train_tokenizer(sentences: list[str], vocab_size: int, min_frequency: int):
    """Train a byte-level BPE tokenizer on `sentences` and return it (a tokenizers.Tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(sentences, trainer=trainer, length=len(sentences))
    return tokenizer


def load_or_train_tokenizer(dataset_cfg, data_dir: Path, train: ParallelText, train_files: Sequence[Path]):
    """Return the cached tokenizer for these training files and settings, training it if needed.

    The cache name contains a digest of the training files and the settings, so a changed corpus or
    vocabulary size trains a new tokenizer. It is written beside the data when that folder is
    writable, else under `paths.data_dir/tokenizers/<dataset name>/`.
    """
    from tokenizers import Tokenizer

    settings = dataset_cfg.tokenizer
    vocab_size, min_frequency = int(settings.vocab_size), int(settings.get("min_frequency", 2))
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise ConfigError(f"dataset.tokenizer.vocab_size={vocab_size} is too small for a byte-level BPE; "
                          "use at least 1000")
    key = hashlib.sha1(f"{TOKENIZER_RECIPE}:{vocab_size}:{min_frequency}:{_file_digest(train_files)}".encode())
    file_name = f"bpe{vocab_size}-{key.hexdigest()[:12]}.json"

    root = Path(dataset_cfg.root).expanduser()
    folders = tokenizer_cache_dirs(root, Path(data_dir), dataset_cfg.name)
    for folder in folders:
        if (folder / file_name).is_file():
            log.info("reusing the tokenizer %s", folder / file_name)
            return Tokenizer.from_file(str(folder / file_name))

    log.info("training a %d-token byte-level BPE on %d training pairs", vocab_size, len(train))
    tokenizer = train_tokenizer(train.source + train.target, vocab_size, min_frequency)
    for position, id_ in enumerate(tokenizer.token_to_id(token) for token in SPECIAL_TOKENS):
        if id_ != position:
            raise RuntimeError(f"special token {SPECIAL_TOKENS[position]} got id {id_}, expected {position}")

    folder = folders[0] if _is_writable(root) else folders[1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / file_name, tokenizer.to_str())
        log.info("saved the tokenizer to %s", folder / file_name)
    except OSError as error:
        log.warning("could not cache the tokenizer in %s (%s); it will be trained again next run", folder, error)
    return tokenizer


def encode(tokenizer, sentences: list[str]) -> list[list[int]]:
    return [encoding.ids for encoding in tokenizer.encode_batch(sentences, add_special_tokens=False)]


def decode(tokenizer, ids: Sequence[int]) -> str:
    """Turn token ids back into text, skipping special tokens and the prefix space."""
    return tokenizer.decode(list(ids), skip_special_tokens=True).strip()


# -- encoded pairs and token batches ------------------------------------------------------------


class TranslationPairs(Dataset):
    """Encoded sentence pairs. Item i is (source ids + EOS, BOS + target ids, target ids + EOS)."""

    def __init__(self, source_ids: list[list[int]], target_ids: list[list[int]]):
        self.source = [torch.tensor(ids + [SPECIAL_TOKENS.index(EOS)], dtype=torch.long) for ids in source_ids]
        bos, eos = SPECIAL_TOKENS.index(BOS), SPECIAL_TOKENS.index(EOS)
        self.target_in = [torch.tensor([bos] + ids, dtype=torch.long) for ids in target_ids]
        self.target_out = [torch.tensor(ids + [eos], dtype=torch.long) for ids in target_ids]
        # Batch cost of a pair: its longer side, as the model receives it (with BOS or EOS).
        self.sizes = np.array([max(len(s), len(t)) for s, t in zip(self.source, self.target_in)], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return self.source[index], self.target_in[index], self.target_out[index]

    def subset(self, indices: list[int]) -> TranslationPairs:
        """Return the pairs at `indices`, sharing their tensors."""
        chosen = TranslationPairs([], [])
        chosen.source = [self.source[i] for i in indices]
        chosen.target_in = [self.target_in[i] for i in indices]
        chosen.target_out = [self.target_out[i] for i in indices]
        chosen.sizes = self.sizes[indices]
        return chosen


def pad_batch(items: list) -> list[torch.Tensor]:
    """Stack (source, target in, target out) triples into three padded [batch, length] tensors."""
    pad = SPECIAL_TOKENS.index(PAD)
    columns = zip(*items)
    return [torch.nn.utils.rnn.pad_sequence(list(column), batch_first=True, padding_value=pad)
            for column in columns]


class TokenBatchPlan:
    """Fixed batches of a dataset's pairs, each with at most `max_tokens` padded tokens per side.

    Pairs are sorted by size and cut greedily, so a batch's padded size (pair count times its
    largest size) stays within `max_tokens`. Pairs larger than `max_tokens` on their own are left
    out (`skipped` counts them). `max_sentences` optionally caps the pairs in a batch.
    """

    def __init__(self, sizes: np.ndarray, max_tokens: int, max_sentences: int | None = None):
        self.sizes = sizes
        self.max_tokens = max_tokens
        self.order = np.argsort(sizes, kind="stable")
        fitting = self.order[sizes[self.order] <= max_tokens]
        self.skipped = len(self.order) - len(fitting)
        self.order = fitting

        # Greedy cut: ascending sizes, so the newest pair is always the batch's largest.
        bounds, start = [], 0
        for position in range(len(self.order)):
            count = position - start + 1
            too_many = max_sentences is not None and count > max_sentences
            if count * sizes[self.order[position]] > max_tokens or too_many:
                bounds.append((start, position))
                start = position
        if len(self.order):
            bounds.append((start, len(self.order)))
        self.bounds = bounds

    def __len__(self) -> int:
        return len(self.bounds)

    def epoch_batches(self, generator: torch.Generator) -> list[list[int]]:
        """The batches of one epoch, in an order that depends only on `generator`.

        Sentences of equal size swap between batches at random. That keeps every batch's largest
        size, and so its token count, the same as in the fixed plan.
        """
        tie_break = torch.rand(len(self.order), generator=generator).numpy()
        ordered = self.order[np.lexsort((tie_break, self.sizes[self.order]))]
        batches = [ordered[start:end].tolist() for start, end in self.bounds]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def fixed_batch(self, index: int) -> list[int]:
        start, end = self.bounds[index]
        return self.order[start:end].tolist()


class TokenBatchSource:
    """Draws whole token-count batches of a plan at random, for AutoLR's trial steps and superbatches.

    A drawn batch is one of the plan's fixed batches, so it has the same size distribution as a
    training batch and the task's loss on it is a mean per target token.
    """

    def __init__(self, dataset: TranslationPairs, plan: TokenBatchPlan, to_device):
        self.dataset = dataset
        self.plan = plan
        self.to_device = to_device

    def draw(self, count: int, generator: torch.Generator) -> list:
        chosen = torch.randint(len(self.plan), (count,), generator=generator).tolist()
        return [self.to_device(pad_batch([self.dataset[i] for i in self.plan.fixed_batch(index)]))
                for index in chosen]


def eval_batches(sizes: np.ndarray, max_tokens: int) -> list[list[int]]:
    """Length-sorted batches covering every pair (a pair larger than `max_tokens` gets its own batch)."""
    order = np.argsort(sizes, kind="stable")
    batches, current = [], []
    for index in order.tolist():
        if current and (len(current) + 1) * sizes[index] > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


# -- everything a translation task needs ------------------------------------------------------------


@dataclass
class TranslationData:
    """Encoded splits, the raw test references and the shared tokenizer."""

    tokenizer: object
    train: TranslationPairs
    valid: TranslationPairs
    test: TranslationPairs
    test_source: list[str]
    test_references: list[str]
    dropped_train_pairs: int

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def load_translation_data(dataset_cfg, data_dir: str) -> TranslationData:
    """Read, tokenize and encode the corpus that `dataset_cfg` describes. Raises DataError or ConfigError."""
    corpus = load_corpus(dataset_cfg)
    root = Path(dataset_cfg.root).expanduser()
    stems = split_file_names(dataset_cfg)
    train_files = [find_text_file(root, stems["train"], lang) for lang in (dataset_cfg.src_lang, dataset_cfg.tgt_lang)]
    tokenizer = load_or_train_tokenizer(dataset_cfg, Path(data_dir), corpus["train"], train_files)

    max_train_pairs = dataset_cfg.get("max_train_pairs")
    max_eval_pairs = dataset_cfg.get("max_eval_pairs")
    for key, value in (("max_train_pairs", max_train_pairs), ("max_eval_pairs", max_eval_pairs)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"invalid value dataset.{key}={value!r}; expected null or an integer >= 1")
    train = corpus["train"].head(max_train_pairs)
    valid = corpus["valid"].head(max_eval_pairs)
    test = corpus["test"].head(max_eval_pairs)

    # Training pairs with an empty side or a side longer than max_len subwords are dropped, as
    # translation toolkits do; validation and test pairs are all kept.
    max_len = int(dataset_cfg.max_len)
    source_ids, target_ids = encode(tokenizer, train.source), encode(tokenizer, train.target)
    kept = [i for i, (s, t) in enumerate(zip(source_ids, target_ids)) if 0 < len(s) <= max_len and 0 < len(t) <= max_len]
    dropped = len(source_ids) - len(kept)
    if dropped:
        log.info("dropped %d of %d training pairs with an empty side or more than %d subwords",
                 dropped, len(source_ids), max_len)
    if not kept:
        raise DataError(f"no training pair of {root} has both sides within 1..{max_len} subwords; "
                        "raise dataset.max_len")
    train_pairs = TranslationPairs([source_ids[i] for i in kept], [target_ids[i] for i in kept])

    def encode_split(text: ParallelText) -> TranslationPairs:
        return TranslationPairs(encode(tokenizer, text.source), encode(tokenizer, text.target))

    return TranslationData(tokenizer, train_pairs, encode_split(valid), encode_split(test),
                           test.source, test.target, dropped)
