"""Translation on real Multi30k pairs: tokenizer, token batches, load errors, a training step, one run."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT, read_run, run_folders
from repro.data.translation import (TokenBatchPlan, decode, encode, load_corpus, load_or_train_tokenizer,
                                    pad_batch, read_lines)
from repro.errors import DataError
from repro.results.schema import epoch_columns
from repro.tasks.translation import TranslationTask

MULTI30K = ROOT.parent / "shared" / "data" / "multi30k"

# A one-layer, 32-wide model on a few hundred pairs keeps each test to seconds on 2 CPU cores.
TINY = ("dataset.max_train_pairs=200", "dataset.max_eval_pairs=24", "dataset.train_eval_pairs=16",
        "dataset.tokenizer.vocab_size=1000", "model.d_model=32", "model.ffn_dim=64", "model.heads=2",
        "model.encoder_layers=1", "model.decoder_layers=1", "model.dropout=0.0", "trainer.batch_size=256")

pytestmark = pytest.mark.skipif(not (MULTI30K / "train.de.gz").is_file(), reason=f"Multi30k not found in {MULTI30K}")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One tokenizer cache for the module, so the BPE is trained once."""
    return tmp_path_factory.mktemp("translation_data")


def compose_config(*overrides: str):
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["dataset=multi30k", "opt=adam", *overrides])
    OmegaConf.resolve(cfg)
    return cfg


@pytest.fixture(scope="module")
def task(data_dir):
    torch.manual_seed(0)
    return TranslationTask(compose_config(*TINY, f"paths.data_dir={data_dir}"), torch.device("cpu"))


def write_corpus(folder: Path, stems: dict[str, str], pairs: int, gzipped: bool = False) -> None:
    """Copy the first `pairs` real Multi30k pairs of each split into `folder` under new file stems."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
    for split, stem in stems.items():
        for lang in ("de", "en"):
            lines = read_lines(MULTI30K / f"{sources[split]}.{lang}.gz")[:pairs]
            text = "\n".join(lines) + "\n"
            if gzipped:
                with gzip.open(folder / f"{stem}.{lang}.gz", "wt", encoding="utf-8") as handle:
                    handle.write(text)
            else:
                (folder / f"{stem}.{lang}").write_text(text, encoding="utf-8")


def test_configs_follow_iwslt_recipe():
    paper = compose_config("dataset=iwslt14")
    assert paper.model.name == "transformer_iwslt"
    assert (paper.model.d_model, paper.model.ffn_dim, paper.model.heads) == (512, 1024, 4)
    assert (paper.model.encoder_layers, paper.model.decoder_layers, paper.model.dropout) == (6, 6, 0.3)
    assert paper.model.share_decoder_embeddings is True
    assert list(paper.opt.betas) == [0.9, 0.98]
    assert (paper.opt.lr, paper.opt.weight_decay) == (5.0e-4, 1.0e-4)
    assert (paper.schedule.kind, paper.schedule.warmup_steps) == ("inverse_sqrt", 4000)
    assert paper.dataset.label_smoothing == 0.1
    assert paper.trainer.batch_size == 4096

    cpu = compose_config()
    assert cpu.model.name == "transformer_small"
    assert cpu.dataset.scale == "cpu"
    assert Path(cpu.dataset.root).resolve() == MULTI30K.resolve()


def test_tokenizer_round_trips_real_sentences(task):
    sentences = read_lines(MULTI30K / "val.de.gz")[:200] + read_lines(MULTI30K / "val.en.gz")[:200]
    ids = encode(task.tokenizer, sentences)
    for sentence, sentence_ids in zip(sentences, ids):
        assert decode(task.tokenizer, sentence_ids) == sentence.strip()
    assert all(3 not in sentence_ids for sentence_ids in ids), "byte-level BPE produced <unk>"
    assert np.mean([len(i) for i in ids]) < 40, "subwords should be much fewer than bytes"


def test_tokenizer_cache_is_reused(task, data_dir):
    cfg = compose_config(*TINY, f"paths.data_dir={data_dir}")
    cached = list((data_dir / "tokenizers" / "multi30k").glob("bpe1000-*.json"))
    assert len(cached) == 1
    corpus = load_corpus(cfg.dataset)
    files = [MULTI30K / "train.de.gz", MULTI30K / "train.en.gz"]
    reloaded = load_or_train_tokenizer(cfg.dataset, data_dir, corpus["train"], files)
    assert reloaded.to_str() == task.tokenizer.to_str()
    assert list((data_dir / "tokenizers" / "multi30k").glob("*.json")) == cached


@pytest.mark.parametrize("max_tokens", [60, 256, 2048])
def test_token_batches_stay_within_limit(task, max_tokens):
    plan = TokenBatchPlan(task.train_set.sizes, max_tokens)
    batches = plan.epoch_batches(torch.Generator().manual_seed(1))
    assert len(batches) == len(plan)
    covered = sorted(i for batch in batches for i in batch)
    assert covered == sorted(plan.order.tolist()), "each fitting pair appears exactly once per epoch"
    for batch in batches:
        source, target_in, target_out = pad_batch([task.train_set[i] for i in batch])
        assert source.numel() <= max_tokens
        assert target_in.numel() <= max_tokens
        assert target_out.shape == target_in.shape


def test_token_batches_depend_only_on_generator(task):
    plan = TokenBatchPlan(task.train_set.sizes, 256)
    first = plan.epoch_batches(torch.Generator().manual_seed(5))
    again = plan.epoch_batches(torch.Generator().manual_seed(5))
    other = plan.epoch_batches(torch.Generator().manual_seed(6))
    assert first == again
    assert first != other
    assert len(other) == len(first) == task.steps_per_epoch(256)


def test_oversized_pairs_are_left_out():
    sizes = np.array([3, 5, 40, 7, 12])
    plan = TokenBatchPlan(sizes, 20)
    assert plan.skipped == 1
    batches = plan.epoch_batches(torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == [0, 1, 3, 4]
    assert all(len(batch) * sizes[batch].max() <= 20 for batch in batches)


def test_training_step_on_real_pairs(task):
    model = task.model
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    batch = task.to_device(next(iter(task.train_loader(256, torch.Generator().manual_seed(0)))))
    before = [p.detach().clone() for p in model.parameters()]
    first = task.loss(model, batch)
    assert math.isfinite(first.item())
    for _ in range(15):
        optimizer.zero_grad()
        loss = task.loss(model, batch)
        loss.backward()
        optimizer.step()
    assert float(task.loss(model, batch)) < float(first) - 0.5
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_loss_is_mean_per_target_token(task):
    batch = task.to_device(next(iter(task.train_loader(256, torch.Generator().manual_seed(0)))))
    source, target_in, target_out = batch
    task.model.eval()
    with torch.no_grad():
        logits = task.model(source, target_in)
        per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target_out, reduction="none",
                                                      label_smoothing=task.label_smoothing)
        mask = target_out.ne(task.pad_id)
        expected = per_token[mask].mean()
        assert torch.allclose(task.loss(task.model, batch), expected, atol=1e-5)
    task.model.train()


def test_batch_source_draws_token_batches(task):
    source = task.batch_source(256)
    first = source.draw(3, torch.Generator().manual_seed(2))
    again = source.draw(3, torch.Generator().manual_seed(2))
    assert len(first) == 3
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    for src, target_in, _ in first:
        assert src.numel() <= 256
        assert target_in.numel() <= 256


def test_evaluate_returns_metric_columns(task):
    metrics = task.evaluate(task.model)
    assert tuple(metrics) == task.metric_columns
    assert metrics["valid_ppl"] == pytest.approx(math.exp(metrics["valid_nll"]))
    assert metrics["valid_loss"] > metrics["valid_nll"], "label smoothing adds to the plain NLL"


def test_greedy_decoding_stops_at_length_limit(task):
    source = pad_batch([task.test_set[i] for i in range(4)])[0]
    outputs = task.model.greedy_decode(source, task.bos_id, task.eos_id, max_len_a=0.0, max_len_b=3)
    assert len(outputs) == 4
    assert all(len(ids) <= 3 for ids in outputs)


def test_missing_folder_names_path(tmp_path):
    missing = tmp_path / "no_such_corpus"
    cfg = compose_config(f"dataset.root={missing}")
    with pytest.raises(DataError) as raised:
        load_corpus(cfg.dataset)
    message = str(raised.value)
    assert "\n" not in message
    assert str(missing) in message
    assert "train.de" in message
    assert "test_2016_flickr.en" in message


def test_missing_file_is_named(tmp_path):
    stems = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
    write_corpus(tmp_path, stems, pairs=5)
    (tmp_path / "val.en").unlink()
    cfg = compose_config(f"dataset.root={tmp_path}")
    with pytest.raises(DataError, match=r"missing val\.en "):
        load_corpus(cfg.dataset)


def test_failed_download_names_path(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'bbaaaa/iwslt14-de-en' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    root = tmp_path / "iwslt14"
    cfg = compose_config("dataset=iwslt14", f"dataset.root={root}")
    with pytest.raises(DataError) as raised:
        load_corpus(cfg.dataset)
    message = str(raised.value)
    assert "\n" not in message
    assert "bbaaaa/iwslt14-de-en" in message
    assert f"into {root}" in message
    assert "dataset.download=false" in message


def test_local_files_skip_download(tmp_path, monkeypatch):
    import datasets

    def fail(*args, **kwargs):
        raise AssertionError("load_dataset must not run when the files exist")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    write_corpus(tmp_path, {"train": "train", "valid": "valid", "test": "test"}, pairs=7, gzipped=True)
    cfg = compose_config("dataset=iwslt14", f"dataset.root={tmp_path}")
    corpus = load_corpus(cfg.dataset)
    assert [len(corpus[split]) for split in ("train", "valid", "test")] == [7, 7, 7]
    assert corpus["train"].source[0] == read_lines(MULTI30K / "train.de.gz")[0]


def test_run_writes_translation_metrics(repro, results_dir, data_dir):
    status, out, err = repro("run", "dataset=multi30k", "opt=adam", "schedule=autolr", *TINY,
                             f"paths.data_dir={data_dir}", "trainer.epochs=2", "trainer.progress=false",
                             "schedule.range_test.steps=6", "schedule.interval=10", "dataset.bleu_every=2")
    assert status == 0, err
    [folder] = run_folders(results_dir)
    record, epochs = read_run(folder)
    metric_columns = ("train_nll", "train_ppl", "valid_loss", "valid_nll", "valid_ppl", "test_bleu")
    assert tuple(epochs.columns) == epoch_columns(metric_columns)
    assert list(epochs["epoch"]) == [1, 2]
    for column in ("train_loss", "train_ppl", "valid_ppl", "lr"):
        assert epochs[column].notna().all(), column
    assert epochs["test_bleu"].isna().tolist() == [True, False]
    assert epochs["autolr_extra_steps"].iloc[-1] > 0
    assert record["status"] == "completed"
    final = record["summary"]["final_eval"]
    assert final["test_sentences"] == 24
    assert 0.0 <= final["test_bleu"] <= 100.0
    assert "tok:13a" in final["bleu_signature"]
    assert (folder / "autolr.csv").is_file()
