"""Answer decoding from span logits, and SQuAD v1.1 exact match and F1 against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repro.data.squad import QAFeatures, SquadExample
from repro.tasks.qa import best_spans, decode_answers, squad_scores


def example(id: str, answers: list[str], context: str = "") -> SquadExample:
    return SquadExample(id=id, title="", context=context, question="", answers=answers,
                        answer_starts=[0] * len(answers))


# (prediction, references, exact match, F1), each worked out by hand from the official v1.1 rules:
# lower-case, drop punctuation and the articles a/an/the, split on white space, take the maximum
# over the references. F1 = 2PR / (P + R) over the bag of tokens.
CASES = [
    ("Denver Broncos", ["Denver Broncos", "Denver Broncos"], 1.0, 1.0),
    ("the Denver Broncos!", ["Denver Broncos"], 1.0, 1.0),            # article and punctuation removed
    ("Carolina Panthers team", ["Carolina Panthers"], 0.0, 0.8),      # P 2/3, R 1
    ("Santa Clara", ["Santa Clara, California", "Levi's Stadium"], 0.0, 0.8),  # P 1, R 2/3, and 0 against the second
    ("Levi's Stadium", ["Santa Clara", "Levis Stadium"], 1.0, 1.0),   # the second reference matches
    ("gold", ["golden"], 0.0, 0.0),                                   # no shared token
    ("", ["Beyonce"], 0.0, 0.0),                                      # empty prediction
]


def test_each_case_matches_hand_values():
    for number, (prediction, references, exact, f1) in enumerate(CASES):
        scores = squad_scores({str(number): prediction}, [example(str(number), references)])
        assert scores["em"] == pytest.approx(100 * exact), prediction
        assert scores["f1"] == pytest.approx(100 * f1, abs=1e-4), prediction


def test_mean_over_questions_matches_hand_values():
    examples = [example(str(number), references) for number, (_, references, _, _) in enumerate(CASES)]
    predictions = {str(number): prediction for number, (prediction, _, _, _) in enumerate(CASES)}
    scores = squad_scores(predictions, examples)
    assert scores["em"] == pytest.approx(100 * 3 / 7)
    assert scores["f1"] == pytest.approx(100 * 4.6 / 7, abs=1e-4)


def test_missing_prediction_scores_zero():
    scores = squad_scores({}, [example("a", ["Denver"])])
    assert scores["em"] == 0.0
    assert scores["f1"] == 0.0


def offsets_for(context: str, question_tokens: int, length: int) -> np.ndarray:
    """Offsets of a window: [CLS], question tokens, [SEP], one token per context word, [SEP], padding."""
    offsets = np.full((length, 2), -1, dtype=np.int32)
    position, row = 0, question_tokens + 2
    for word in context.split(" "):
        offsets[row] = (position, position + len(word))
        position += len(word) + 1
        row += 1
    return offsets


def test_best_span_skips_question_tokens():
    offsets = offsets_for("alpha beta gamma", question_tokens=2, length=10)
    start = np.zeros(10, dtype=np.float32)
    end = np.zeros(10, dtype=np.float32)
    start[1], end[1] = 50.0, 50.0  # a question token: never an answer
    start[5], end[6] = 5.0, 4.0     # "beta gamma"
    score, first, last = best_spans(start, end, offsets, n_best=20, max_answer_length=30)
    assert (first, last) == (5, 6)
    assert score == pytest.approx(9.0)


def test_best_span_respects_max_answer_length():
    offsets = offsets_for("a b c d e", question_tokens=1, length=9)
    start = np.zeros(9, dtype=np.float32)
    end = np.zeros(9, dtype=np.float32)
    start[3], end[7] = 10.0, 10.0  # a 5-token span, too long for max_answer_length 3
    end[4] = 6.0
    _, first, last = best_spans(start, end, offsets, n_best=20, max_answer_length=3)
    assert (first, last) == (3, 4)


def test_best_span_without_valid_pair():
    offsets = np.full((4, 2), -1, dtype=np.int32)
    score, first, last = best_spans(np.zeros(4), np.zeros(4), offsets, n_best=20, max_answer_length=30)
    assert math.isinf(score)
    assert (first, last) == (-1, -1)


def test_decode_picks_best_window():
    context = "Super Bowl 50 was played at Levi's Stadium in Santa Clara"
    length = 16
    # Two windows of one question: the first covers words 0-6, the second words 4-10.
    first_window = offsets_for(context, question_tokens=2, length=length)
    first_window[4 + 7:] = -1
    second_window = np.full((length, 2), -1, dtype=np.int32)
    second_window[4:11] = offsets_for(context, question_tokens=2, length=length)[8:15]
    features = QAFeatures(
        input_ids=torch.zeros(2, length, dtype=torch.int32), token_type_ids=torch.zeros(2, length, dtype=torch.int32),
        attention_mask=torch.ones(2, length, dtype=torch.int32), start_positions=torch.zeros(2, dtype=torch.long),
        end_positions=torch.zeros(2, dtype=torch.long), example_index=torch.zeros(2, dtype=torch.long),
        offsets=torch.from_numpy(np.stack([first_window, second_window])),
    )
    start = np.zeros((2, length), dtype=np.float32)
    end = np.zeros((2, length), dtype=np.float32)
    start[0, 4], end[0, 5] = 3.0, 3.0     # "Super Bowl", score 6
    start[1, 6], end[1, 7] = 4.0, 4.0     # words 6-7 of the context: "Levi's Stadium", score 8
    answers = decode_answers([example("q", ["Levi's Stadium"], context)], features, start, end)
    assert answers == {"q": "Levi's Stadium"}
