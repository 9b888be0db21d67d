"""The CTC prefix beam search and its character language model (recognizer.beam_search, char_lm, decoding)."""

import math

import numpy as np
import pytest
import torch

from seqlab.core.errors import CheckpointError
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import DecodeConfig
from seqlab.tasks.ocr.recognizer.beam_search import BeamSearchDecoder, BeamSettings
from seqlab.tasks.ocr.recognizer.char_lm import CharLM, build_language_model
from seqlab.tasks.ocr.recognizer.ctc import greedy_decode
from seqlab.tasks.ocr.recognizer.decoding import decoder_for

CHARSET = Charset("abc", "abc ")  # classes: 0 blank, 1 a, 2 b, 3 c, 4 space


def frames(rows: list[dict[int, float]]) -> np.ndarray:
    """(T, C) log-probs: each row's given class probabilities, the rest of the mass spread over the others."""
    out = np.zeros((len(rows), CHARSET.num_classes))
    for t, row in enumerate(rows):
        rest = max(1e-9, (1.0 - sum(row.values())) / (CHARSET.num_classes - len(row)))
        out[t] = [row.get(c, rest) for c in range(CHARSET.num_classes)]
    return np.log(out)


def decode(rows: list[dict[int, float]], lm: CharLM | None = None, **settings: float) -> str:
    decoder = BeamSearchDecoder(CHARSET, BeamSettings(**settings), lm)  # type: ignore[arg-type]
    return CHARSET.decode(decoder.decode(frames(rows)))


def test_confident_frames_read_as_greedy_does() -> None:
    rows = [{1: 0.98}, {0: 0.98}, {2: 0.98}, {2: 0.98}, {0: 0.98}, {2: 0.98}, {3: 0.98}, {0: 0.98}]
    greedy = greedy_decode(torch.from_numpy(frames(rows))[:, None], torch.tensor([len(rows)]))[0]
    assert CHARSET.decode(greedy) == "abbc"
    assert decode(rows) == "abbc"


def test_paths_are_summed_a_blank_spike_inside_a_letter_is_one_letter() -> None:
    # The best single path is a, blank, a ("aa"), but "a" has more paths: a-a, a-blank-... summed.
    rows = [{1: 0.6, 0: 0.4}, {0: 0.55, 1: 0.45}, {1: 0.6, 0: 0.4}]
    greedy = greedy_decode(torch.from_numpy(frames(rows))[:, None], torch.tensor([3]))[0]
    assert CHARSET.decode(greedy) == "aa"
    assert decode(rows) == "a"


def test_the_language_model_settles_an_ambiguous_frame() -> None:
    lm = CharLM.fit(["ab ab ab", "cab ab"] * 20, CHARSET.chars, 3)
    rows = [{1: 0.97}, {0: 0.97}, {2: 0.49, 3: 0.50}]  # "ac" by a hair for the optics, "ab" for the text
    assert decode(rows) == "ac"
    assert decode(rows, lm, lm_weight=1.0) == "ab"


def test_a_weightless_language_model_changes_nothing() -> None:
    lm = CharLM.fit(["ab ab ab"] * 5, CHARSET.chars, 3)
    rows = [{1: 0.97}, {0: 0.97}, {2: 0.49, 3: 0.50}]
    assert decode(rows, lm, lm_weight=0.0) == decode(rows)


def test_the_gate_keeps_the_language_model_off_texts_it_finds_improbable() -> None:
    lm = CharLM.fit(["ab ab ab", "cab ab"] * 20, CHARSET.chars, 3)
    word = [{3: 0.97}, {0: 0.97}, {1: 0.97}, {0: 0.97}, {2: 0.49, 3: 0.50}]  # greedy "cac": "ca" was counted
    code = [{3: 0.97}, {0: 0.97}, {3: 0.97}, {0: 0.97}, {2: 0.49, 3: 0.50}]  # greedy "ccc": nothing like it
    decoder = BeamSearchDecoder(CHARSET, BeamSettings(lm_weight=1.0), lm)
    word_score, code_score = decoder.greedy_lm_score(frames(word)), decoder.greedy_lm_score(frames(code))
    assert code_score < word_score < 0
    gate = (word_score + code_score) / 2
    assert decode(word, lm, lm_weight=1.0, lm_gate=gate) == "cab"  # above the gate: the model still settles it
    assert decode(code, lm, lm_weight=1.0) == "cab"  # ungated, the model pulls the code towards its text
    assert decode(code, lm, lm_weight=1.0, lm_gate=gate) == decode(code) == "ccc"  # gated: the optics decide


def test_batches_honour_each_samples_length() -> None:
    rows = [{1: 0.98}, {0: 0.98}, {2: 0.98}, {3: 0.98}]
    batch = torch.from_numpy(np.stack([frames(rows), frames(rows)], axis=1)).float()  # (T, 2, C)
    decoder = BeamSearchDecoder(CHARSET, BeamSettings(), None)
    assert [CHARSET.decode(s) for s in decoder(batch, torch.tensor([4, 2]))] == ["abc", "a"]


def test_the_language_model_prefers_what_it_counted() -> None:
    lm = CharLM.fit(["abc abc abc", "cab"], CHARSET.chars, 3)
    assert lm.score("abc") > lm.score("cba")
    total = np.exp(lm.log_probs("ab")).sum()
    assert math.isclose(total, 1.0, rel_tol=1e-9)  # a distribution over the alphabet, unseen characters included


def test_texts_outside_the_alphabet_are_skipped_and_nothing_left_is_refused() -> None:
    lm = CharLM.fit(["abz", "ab"], CHARSET.chars, 2)
    assert lm.tables[0].counts.sum() == 2  # only "ab"
    with pytest.raises(ValueError, match="no text"):
        CharLM.fit(["xyz"], CHARSET.chars, 2)


def test_the_file_round_trips_and_a_bad_file_is_one_clear_error(tmp_path) -> None:
    path = tmp_path / "lm.npz"
    lm = build_language_model(["ab  ab", "cab ba"], CHARSET, 4, path)
    again = CharLM.load(path)
    assert again.order == 4 and again.alphabet == CHARSET.chars
    for context in ("", "a", "ca", "cab", "bbb"):
        np.testing.assert_allclose(again.log_probs(context), lm.log_probs(context))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.npz: unreadable language model"):
        CharLM.load(tmp_path / "junk.npz")
    with pytest.raises(CheckpointError, match="language model not found"):
        CharLM.load(tmp_path / "missing.npz")


def _config(**overrides: object) -> DecodeConfig:
    base = {"method": "beam", "beam_width": 4, "lm_weight": 0.5, "length_bonus": 0.5, "min_prob": 1e-3, "lm_order": 3,
            "lm_gate": None}
    return DecodeConfig(**{**base, **overrides})


def test_decoder_for_params(tmp_path) -> None:
    assert decoder_for(CHARSET, _config(method="greedy")) is greedy_decode
    assert isinstance(decoder_for(CHARSET, _config(lm_weight=0.0), tmp_path / "absent.npz"), BeamSearchDecoder)
    with pytest.raises(CheckpointError, match="dvc repro ocr-lm"):
        decoder_for(CHARSET, _config(), tmp_path / "absent.npz")
    build_language_model(["abc"], CHARSET, 3, tmp_path / "lm.npz")
    decoder = decoder_for(CHARSET, _config(), tmp_path / "lm.npz")
    assert isinstance(decoder, BeamSearchDecoder) and decoder.lm is not None
