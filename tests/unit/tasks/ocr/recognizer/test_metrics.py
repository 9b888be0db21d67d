import json

import pytest

from seqlab.tasks.ocr.recognizer.metrics import (
    alnum_nocase,
    by_length,
    cer,
    mean_ned_similarity,
    summarize,
    word_accuracy,
)

PREDS = ["abc", "ab", ""]
TRUTHS = ["abc", "abd", "x"]  # distances 0, 1, 1; truth lengths 3, 3, 1


def test_cer_is_corpus_level() -> None:
    assert cer(PREDS, TRUTHS) == pytest.approx(2 / 7)
    assert cer(["kitten"], ["sitting"]) == pytest.approx(3 / 7)


def test_word_accuracy() -> None:
    assert word_accuracy(PREDS, TRUTHS) == pytest.approx(1 / 3)


def test_mean_ned_similarity() -> None:
    # 1 - 0/3, 1 - 1/3, 1 - 1/1
    assert mean_ned_similarity(PREDS, TRUTHS) == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert mean_ned_similarity([""], [""]) == 1.0
    assert mean_ned_similarity(["abcd"], ["ab"]) == pytest.approx(0.5)  # normalized by the longer


def test_by_length() -> None:
    groups = by_length(PREDS, TRUTHS)
    assert list(groups) == [1, 3]
    assert groups[1] == {"count": 1, "cer": 1.0, "word_accuracy": 0.0}
    assert groups[3]["count"] == 2
    assert groups[3]["cer"] == pytest.approx(1 / 6)
    assert groups[3]["word_accuracy"] == pytest.approx(0.5)


def test_alnum_nocase_keeps_letters_digits_and_single_spaces() -> None:
    assert alnum_nocase("Hello, (World)! 42%") == "hello world 42"
    assert alnum_nocase("A - B") == "a b" and alnum_nocase("--") == ""
    s = summarize(["hello world", "Its 3."], ["Hello, World!", "It's 3"])
    # Case-sensitive CER counts the capitals and punctuation; the alnum figure ignores them, not the letters.
    assert s["cer"] == pytest.approx((4 + 2) / 19)
    assert s["cer_alnum_nocase"] == 0.0 and s["cer_nocase"] == pytest.approx(4 / 19)
    assert summarize(["helo world"], ["Hello, World!"])["cer_alnum_nocase"] == pytest.approx(1 / 11)


def test_empty_inputs() -> None:
    assert cer([], []) == 0.0
    assert word_accuracy([], []) == 0.0
    assert mean_ned_similarity([], []) == 0.0
    assert by_length([], []) == {}
    assert summarize([], [])["count"] == 0


def test_empty_truths_count_insertions() -> None:
    assert cer(["ab", ""], ["", ""]) == 2.0
    assert cer([""], [""]) == 0.0


def test_summarize_is_json_ready() -> None:
    s = summarize(["Abc", "ab", ""], TRUTHS)
    assert s["cer"] == pytest.approx(3 / 7)
    assert s["cer_nocase"] == pytest.approx(2 / 7)
    assert s["by_length"]["3"]["count"] == 2
    back = json.loads(json.dumps(s))
    assert back == s
    assert all(type(v) in (int, float) for k, v in s.items() if k != "by_length")


def test_length_mismatch() -> None:
    with pytest.raises(ValueError):
        cer(["a"], [])
