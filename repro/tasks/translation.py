"""Translation: a Transformer trained with label-smoothed cross entropy on token-count batches.

`trainer.batch_size` is the maximum number of padded tokens per side of a training batch, and the
training loss is a mean per target token (padding ignored), so AutoLR compares candidate LRs on
per-token losses. Validation reports the label-smoothed loss (comparable to train_loss) and the
plain negative log-likelihood with its perplexity exp(NLL), in nats. BLEU comes from greedy
decoding of the test split, scored by sacrebleu on detokenized text.
"""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..autolr.batches import BatchSource
from ..data.translation import (BOS, EOS, PAD, SPECIAL_TOKENS, TokenBatchPlan, TokenBatchSource,
                                TranslationPairs, decode, eval_batches, load_translation_data, pad_batch)
from ..errors import ConfigError
from ..models.transformer import build_transformer
from .base import Task

log = logging.getLogger(__name__)


class _PlannedBatches:
    """Batch sampler of one epoch: a fixed list of index lists, with a length for progress bars."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class TranslationTask(Task):
    """Sequence-to-sequence translation on a parallel corpus (IWSLT'14 De-En, Multi30k)."""

    def __init__(self, cfg, device: torch.device):
        super().__init__(device)
        dataset_cfg = cfg.dataset
        data = load_translation_data(dataset_cfg, cfg.paths.data_dir)
        self.data = data
        self.tokenizer = data.tokenizer
        self.train_set, self.valid_set, self.test_set = data.train, data.valid, data.test
        self.pad_id, self.bos_id, self.eos_id = (SPECIAL_TOKENS.index(token) for token in (PAD, BOS, EOS))

        self.model = build_transformer(cfg.model, data.vocab_size, self.pad_id).to(device)
        parameters = sum(p.numel() for p in self.model.parameters())
        log.info("translation data: %d train, %d valid, %d test pairs; vocabulary %d; model %.1fM parameters",
                 len(self.train_set), len(self.valid_set), len(self.test_set), data.vocab_size, parameters / 1e6)

        self.label_smoothing = float(dataset_cfg.label_smoothing)
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"invalid value dataset.label_smoothing={self.label_smoothing}; expected a number in [0, 1)")
        self.eval_max_tokens = int(dataset_cfg.get("eval_max_tokens") or cfg.trainer.batch_size)
        self.decode_max_len_a = float(dataset_cfg.decode.max_len_a)
        self.decode_max_len_b = int(dataset_cfg.decode.max_len_b)
        self.bleu_every = int(dataset_cfg.get("bleu_every") or 0)
        self.num_workers = cfg.trainer.num_workers
        self._evaluations = 0
        self._plans: dict[int, TokenBatchPlan] = {}

        # A fixed random subset of training pairs, scored in eval mode at each evaluation: the
        # training perplexity of the current weights, free of dropout and of AutoLR's trial steps.
        count = min(int(dataset_cfg.train_eval_pairs), len(self.train_set))
        chosen = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(0))[:count].tolist()
        self.train_eval_set = self.train_set.subset(chosen)

        self.metric_columns = ("train_nll", "train_ppl", "valid_loss", "valid_nll", "valid_ppl")
        if self.bleu_every:
            self.metric_columns += ("test_bleu",)

    # -- training -----------------------------------------------------------------------------

    def plan(self, max_tokens: int) -> TokenBatchPlan:
        """Return the fixed token-count batches for `max_tokens`, built once per value."""
        if max_tokens not in self._plans:
            plan = TokenBatchPlan(self.train_set.sizes, max_tokens)
            if len(plan) == 0:
                raise ConfigError(f"trainer.batch_size={max_tokens} tokens is smaller than every training pair "
                                  f"(shortest {int(self.train_set.sizes.min())} tokens); raise trainer.batch_size")
            if plan.skipped:
                log.warning("%d training pairs longer than trainer.batch_size=%d tokens are left out",
                            plan.skipped, max_tokens)
            self._plans[max_tokens] = plan
        return self._plans[max_tokens]

    def train_loader(self, batch_size: int, generator: torch.Generator, num_workers: int = 0) -> DataLoader:
        """Return one epoch of token-count batches (`batch_size` = max tokens per side), shuffled by `generator`."""
        batches = self.plan(batch_size).epoch_batches(generator)
        return DataLoader(self.train_set, batch_sampler=_PlannedBatches(batches), collate_fn=pad_batch,
                          num_workers=num_workers, pin_memory=self.device.type == "cuda")

    def steps_per_epoch(self, batch_size: int) -> int:
        return len(self.plan(batch_size))

    def batch_source(self, batch_size: int) -> BatchSource:
        return TokenBatchSource(self.train_set, self.plan(batch_size), self.to_device)

    def loss(self, model, batch) -> torch.Tensor:
        """Label-smoothed cross entropy, averaged over the batch's non-padding target tokens."""
        source, target_in, target_out = batch
        logits = model(source, target_in)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_out.reshape(-1),
                               ignore_index=self.pad_id, label_smoothing=self.label_smoothing)

    # -- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, model, pairs: TranslationPairs) -> dict[str, float]:
        """Compute the per-token smoothed loss, NLL and perplexity of `pairs` in eval mode (teacher forcing)."""
        was_training = model.training
        model.eval()
        smoothed = torch.zeros((), dtype=torch.float64, device=self.device)
        nll = torch.zeros((), dtype=torch.float64, device=self.device)
        tokens = 0
        for indices in eval_batches(pairs.sizes, self.eval_max_tokens):
            source, target_in, target_out = self.to_device(pad_batch([pairs[i] for i in indices]))
            logits = model(source, target_in).reshape(-1, model.output.out_features).float()
            target = target_out.reshape(-1)
            smoothed += F.cross_entropy(logits, target, ignore_index=self.pad_id, reduction="sum",
                                        label_smoothing=self.label_smoothing).double()
            nll += F.cross_entropy(logits, target, ignore_index=self.pad_id, reduction="sum").double()
            tokens += int(target.ne(self.pad_id).sum())
        model.train(was_training)
        mean_nll = float(nll) / tokens
        return {"loss": float(smoothed) / tokens, "nll": mean_nll, "ppl": math.exp(min(mean_nll, 50.0))}

    @torch.no_grad()
    def translate(self, model, pairs: TranslationPairs) -> list[str]:
        """Translate every source sentence of `pairs` greedily and return the texts in the split's order."""
        was_training = model.training
        model.eval()
        hypotheses = [""] * len(pairs)
        for indices in eval_batches(pairs.sizes, self.eval_max_tokens):
            source = pad_batch([pairs[i] for i in indices])[0].to(self.device)
            outputs = model.greedy_decode(source, self.bos_id, self.eos_id, self.decode_max_len_a,
                                          self.decode_max_len_b)
            for index, ids in zip(indices, outputs):
                hypotheses[index] = decode(self.tokenizer, ids)
        model.train(was_training)
        return hypotheses

    def bleu(self, model) -> tuple[float, str, list[str]]:
        """Score greedy test translations with corpus BLEU and return (score, sacrebleu signature, hypotheses)."""
        from sacrebleu.metrics import BLEU

        metric = BLEU()
        hypotheses = self.translate(model, self.test_set)
        result = metric.corpus_score(hypotheses, [self.data.test_references])
        return result.score, str(metric.get_signature()), hypotheses

    def evaluate(self, model) -> dict[str, float]:
        train = self.score(model, self.train_eval_set)
        valid = self.score(model, self.valid_set)
        metrics = {"train_nll": train["nll"], "train_ppl": train["ppl"], "valid_loss": valid["loss"],
                   "valid_nll": valid["nll"], "valid_ppl": valid["ppl"]}
        self._evaluations += 1
        # NOTE: BLEU runs on every `bleu_every`-th evaluation of this process. After a resume the
        # count restarts, so the epochs that get a BLEU value can shift.
        if self.bleu_every and self._evaluations % self.bleu_every == 0:
            metrics["test_bleu"] = self.bleu(model)[0]
        return metrics

    def final_evaluate(self, model) -> dict[str, float]:
        """Compute test BLEU (greedy decoding, sacrebleu), test NLL and perplexity, which run.json stores."""
        started = time.perf_counter()
        score, signature, hypotheses = self.bleu(model)
        test = self.score(model, self.test_set)
        seconds = time.perf_counter() - started
        log.info("test BLEU %.2f (greedy, %s) on %d sentences in %.1fs", score, signature, len(hypotheses), seconds)
        for source, hypothesis, reference in list(zip(self.data.test_source, hypotheses, self.data.test_references))[:3]:
            log.info("  source: %s\n  output: %s\n  reference: %s", source, hypothesis, reference)
        return {"test_bleu": score, "bleu_signature": signature, "bleu_decoding": "greedy",
                "test_nll": test["nll"], "test_ppl": test["ppl"], "test_sentences": len(hypotheses),
                "bleu_seconds": seconds}
