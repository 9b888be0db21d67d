"""Text lines: the space class, line texts and images, CTC over wide images, WER, reading lines back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import ColumnBiLSTMConfig, CRNNConfig
from seqlab.tasks.ocr.recognizer.batching import WidthBucketSampler, collate
from seqlab.tasks.ocr.recognizer.ctc import CtcReader, ctc_loss
from seqlab.tasks.ocr.recognizer.metrics import by_words, summarize, wer
from seqlab.tasks.ocr.recognizer.models import CRNN, ColumnBiLSTM, model_config
from seqlab.tasks.ocr.synth import trdg_render as render
from seqlab.tasks.ocr.synth.prose import ProseSource
from seqlab.tasks.ocr.synth.reserved_render import RESERVED_CHARS, render_reserved_split, reserved_lines
from seqlab.tasks.ocr.synth.words import KINDS, WordSource

from .synth.test_reserved_render import FONTS as RESERVED_TEST_FONTS

CHARSET = Charset.from_name("digits_lower")


# --- the space in labels ------------------------------------------------------------------------------

def test_labels_keep_one_space_between_words() -> None:
    assert CHARSET.normalize("  Two   Words\there ") == "two words here"
    assert Charset.from_name("alnum").normalize(" Keep  Case ") == "Keep Case"
    ids = CHARSET.encode("ab cd")
    assert ids[2] == len(CHARSET) and CHARSET.decode(ids) == "ab cd"


def test_other_whitespace_is_refused() -> None:
    with pytest.raises(ValueError, match="whitespace"):
        Charset("tabbed", "ab\t ")


# --- line texts and images ----------------------------------------------------------------------------

def test_sample_lines_joins_the_drawn_number_of_words() -> None:
    source = WordSource(CHARSET, 2, 12, 0.7, 0.1, mixed_ratio=0.1)
    lines = source.sample_lines(np.random.default_rng(0), 200, 2, 5)
    counts = [len(line.split(" ")) for line in lines]
    assert min(counts) == 2 and max(counts) == 5 and set(counts) == {2, 3, 4, 5}
    assert all(line == CHARSET.normalize(line) or line.lower() != line for line in lines)
    assert all("  " not in line and line.strip() == line for line in lines)
    assert lines == source.sample_lines(np.random.default_rng(0), 200, 2, 5)  # the generator decides everything
    with pytest.raises(ValueError, match="min_words"):
        source.sample_lines(np.random.default_rng(0), 1, 3, 2)


def test_sample_with_kinds_draws_what_sample_draws() -> None:
    source = WordSource(CHARSET, 2, 12, 0.5, 0.2, mixed_ratio=0.2)
    words, kinds = source.sample_with_kinds(np.random.default_rng(4), 400)
    assert words == source.sample(np.random.default_rng(4), 400)
    assert set(kinds) == set(KINDS) and len(kinds) == len(words)
    kind_of = dict(zip(words, kinds, strict=True))
    assert all(w.isdigit() for w, k in kind_of.items() if k == "number")
    assert all(any(c.isdigit() for c in w) and any(c.isalpha() for c in w) for w, k in kind_of.items() if k == "mixed")
    assert all(w in source.words for w, k in kind_of.items() if k == "dictionary")


PROSE = ["It was the best of times, it was the worst of times, it was the age of wisdom.",
         "Call me Ishmael. Some years ago, never mind how long precisely, I went to sea."]


def test_prose_lines_replace_some_word_lines_and_nothing_else() -> None:
    """Windows are drawn after the word lines: they change only the texts and kinds of the lines they replace."""
    from .synth.test_trdg_render import DATA, FONTS, PARAMS, data

    source = render.word_source(CHARSET, DATA.words)
    prose = ProseSource(PROSE, CHARSET, 8, 40)
    half_prose = data(lines={**PARAMS["lines"], "prose": 0.5})
    words = render.build_specs(np.random.default_rng(5), 300, FONTS, source, DATA, 0.3)
    mixed = render.build_specs(np.random.default_rng(5), 300, FONTS, source, half_prose, 0.3, prose)
    assert mixed == render.build_specs(np.random.default_rng(5), 300, FONTS, source, half_prose, 0.3, prose)
    assert {s.kind for s in words} == {"dictionary", "number", "random", "words"}
    windows = [m for m in mixed if m.kind == "prose"]
    assert 25 < len(windows) < 65  # ~45 of ~90 lines
    assert all(8 <= len(m.text) <= 40 and any(m.text in p for p in PROSE) for m in windows)
    for w, m in zip(words, mixed, strict=True):
        assert (w.font, w.seed, w.background, w.distortion) == (m.font, m.seed, m.background, m.distortion)
        assert (w.text, w.kind) == (m.text, m.kind) or (w.kind, m.kind) == ("words", "prose")
    with pytest.raises(ValueError, match="needs a ProseSource"):
        render.build_specs(np.random.default_rng(5), 10, FONTS, source, half_prose, 0.3)


def test_a_line_share_leaves_the_word_images_as_they_were() -> None:
    """Lines are drawn after everything else: turning them on changes only the texts of the line images."""
    from .synth.test_trdg_render import DATA, FONTS

    source = render.word_source(CHARSET, DATA.words)
    words = render.build_specs(np.random.default_rng(5), 300, FONTS, source, DATA, 0.0)
    mixed = render.build_specs(np.random.default_rng(5), 300, FONTS, source, DATA, 0.3)
    lines = [m for m in mixed if " " in m.text]
    assert 50 < len(lines) < 130  # ~90 expected
    assert all(2 <= len(m.text.split()) <= 3 for m in lines)  # PARAMS' lines.words
    for w, m in zip(words, mixed, strict=True):
        assert (w.font, w.seed, w.background, w.distortion) == (m.font, m.seed, m.background, m.distortion)
        assert w.text == m.text or " " in m.text


def test_trdg_renders_a_line_at_the_height_wider_than_its_words() -> None:
    cfg = render.RenderConfig(32)
    line = render.ImageSpec("several words here", "Roboto-Regular.ttf", 1, render.BACKGROUNDS["plain"])
    word = render.ImageSpec("several", "Roboto-Regular.ttf", 1, render.BACKGROUNDS["plain"])
    line_image, _ = render.render_one(line, cfg)
    word_image, _ = render.render_one(word, cfg)
    assert line_image.shape[0] == word_image.shape[0] == 32
    assert line_image.shape[1] > 2 * word_image.shape[1]


def test_reserved_lines_render_clean_and_degraded(tmp_path) -> None:
    (tmp_path / "reserved.txt").write_text("\n".join(PROSE) + "\n")
    lines = reserved_lines(6, CHARSET, seed=0, corpus_dir=tmp_path)
    assert all(RESERVED_CHARS[0] <= len(line) <= RESERVED_CHARS[1] for line in lines)
    clean, _ = render_reserved_split(lines, RESERVED_TEST_FONTS, seed=1)
    degraded, _ = render_reserved_split(lines, RESERVED_TEST_FONTS, seed=1, degraded=True)
    for line, im, deg in zip(lines, clean, degraded, strict=True):
        assert im.shape[0] == deg.shape[0] == 32 and im.dtype == np.uint8
        # kept aspect: at least ~4 px a character even in a condensed face
        assert im.shape[1] > 4 * len(line)
        # a long line is rotated less than a word, so its text keeps most of the height
        assert deg.shape[1] > 0.6 * im.shape[1]


# --- CTC over wide images -----------------------------------------------------------------------------

@pytest.mark.parametrize("model", [
    CRNN(model_config(CRNNConfig, channels=[8, 16], hidden_size=16, downsample=4, frames_per_step=2),
         CHARSET.num_classes, 32),
    ColumnBiLSTM(model_config(ColumnBiLSTMConfig, hidden_size=16, stride=4), CHARSET.num_classes, 32),
], ids=["crnn", "bilstm"])
def test_ctc_output_lengths_follow_each_images_width(model: torch.nn.Module) -> None:
    rng = np.random.default_rng(0)
    widths = [40, 900, 333]  # a word and two lines in one padded batch
    images = [rng.integers(0, 256, size=(32, w), dtype=np.uint8) for w in widths]
    labels = [CHARSET.encode(t) for t in ("ab", "a line of several words that is long", "two words")]
    batch = collate(images, labels, pad_multiple=8)
    log_probs, lengths = model.eval()(batch.images, batch.widths)
    assert log_probs.shape[0] >= int(lengths.max()) and log_probs.shape[1] == 3  # T follows the padded width
    assert lengths.tolist() == model.output_lengths(batch.widths).tolist()  # true widths, not the padded one
    assert lengths[1] > 2 * len(labels[1]) and lengths[0] < lengths[2] < lengths[1]
    loss = ctc_loss(log_probs, lengths, batch, reduction="none")
    assert torch.isfinite(loss).all() and (loss > 0).all()


def test_width_buckets_keep_padding_low_with_lines_among_words() -> None:
    rng = np.random.default_rng(0)
    words = rng.integers(40, 200, size=3000)
    lines = rng.integers(250, 900, size=1000)
    widths = rng.permutation(np.concatenate([words, lines]))
    sampler = WidthBucketSampler(widths, 64, torch.Generator().manual_seed(0))
    padded = sum(len(b) * int(widths[b].max()) for b in sampler)
    assert padded / widths.sum() < 1.05  # under 5% of the computed columns are padding


# --- reading lines ------------------------------------------------------------------------------------

class _Scripted(torch.nn.Module):
    """Emits a fixed class path for every image: a stand-in for a trained model."""

    def __init__(self, path: list[int], num_classes: int) -> None:
        super().__init__()
        self.path, self.num_classes = path, num_classes

    def forward(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps, batch = len(self.path), images.shape[0]
        scores = torch.full((steps, batch, self.num_classes), -10.0)
        scores[torch.arange(steps), :, torch.tensor(self.path)] = 0.0
        return scores.log_softmax(2), torch.full((batch,), steps, dtype=torch.long)


def test_reader_prints_lines_with_single_spaces() -> None:
    space = len(CHARSET)
    a, b = CHARSET.encode("ab")
    path = [space, a, 0, b, space, 0, space, a, space]  # " ab  a ": edges and doubled gaps collapse
    reader = CtcReader(_Scripted(path, CHARSET.num_classes), CHARSET, torch.device("cpu"))
    assert reader.read([np.zeros((32, 64), dtype=np.uint8)]) == ["ab a"]


def test_predict_prints_a_line_with_its_case_and_punctuation(tmp_path) -> None:
    """`seqlab predict ocr` on a line image (a 1-bit PNG, 45 px tall as a scan gives it) prints the text
    the model reads, capitals, punctuation and single spaces as they are."""
    import io

    from PIL import Image, ImageDraw

    from seqlab.tasks.ocr.recognizer.task import OcrTask

    english = Charset.from_name("english")
    text = "He said: \"Don't (1/2) stop!\" - 100% & more?"
    path = []
    for ch in text:  # a blank after every character, so repeated letters stay apart
        path += [english.encode(ch)[0] if ch != " " else len(english), 0]
    image = Image.new("1", (900, 45), 1)
    ImageDraw.Draw(image).text((20, 10), text, fill=0)
    line = tmp_path / "line.png"
    image.save(line)
    out, err = io.StringIO(), io.StringIO()
    task = OcrTask("crnn", english)
    failures = task.predict(_Scripted(path, english.num_classes), {"charset": english.chars, "height": 32},
                            [str(line)], out, err)
    assert failures == 0 and err.getvalue() == ""
    assert out.getvalue() == f"{line}\t{text}\n"


# --- word error rate ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("preds", "truths", "expected"), [
    (["the cat sat"], ["the cat sat"], 0.0),
    (["the cat sat"], ["the hat sat"], 1 / 3),  # one substitution
    (["the sat"], ["the cat sat"], 1 / 3),  # one deletion
    (["the big cat sat"], ["the cat sat"], 1 / 3),  # one insertion
    (["thecat sat"], ["the cat sat"], 2 / 3),  # a lost space: one substitution and one deletion
    (["a b", "c"], ["a b", "d e"], 2 / 4),  # corpus level: 2 errors over 4 truth words
    ([""], ["two words"], 1.0),
])
def test_wer_on_hand_made_cases(preds: list[str], truths: list[str], expected: float) -> None:
    assert wer(preds, truths) == pytest.approx(expected)


def test_line_metrics_by_number_of_words() -> None:
    truths = ["a b", "c d", "e f g"]
    preds = ["a b", "c x", "e f g"]
    rows = by_words(preds, truths)
    assert list(rows) == [2, 3]
    assert rows[2] == {"count": 2, "cer": pytest.approx(1 / 6), "wer": pytest.approx(1 / 4), "line_accuracy": 0.5}
    assert rows[3]["wer"] == 0.0 and rows[3]["line_accuracy"] == 1.0
    assert summarize(preds, truths)["wer"] == pytest.approx(1 / 7)
