import math

import pytest
import torch

from seqlab.tasks.ocr.recognizer.ctc import greedy_decode


def one_hot_log_probs(paths: list[list[int]], num_classes: int = 5) -> torch.Tensor:
    """(T, B, C) log-probs whose argmax follows each path (paths padded to the same T)."""
    steps = max(len(p) for p in paths)
    lp = torch.full((steps, len(paths), num_classes), math.log(0.1 / (num_classes - 1)))
    for b, path in enumerate(paths):
        for t, c in enumerate(path):
            lp[t, b, c] = math.log(0.9)
    return lp


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([1, 1, 2, 2, 2, 3], [1, 2, 3]),  # repeats collapse
        ([1, 0, 1, 1, 0, 1], [1, 1, 1]),  # a blank separates repeated symbols
        ([0, 0, 0, 0], []),  # all blank
        ([0, 2, 0, 0, 3, 3, 0], [2, 3]),  # leading/trailing blanks dropped
        ([4], [4]),
    ],
)
def test_single_paths(path: list[int], expected: list[int]) -> None:
    lp = one_hot_log_probs([path])
    assert greedy_decode(lp, torch.tensor([len(path)])) == [expected]


def test_lengths_shorter_than_steps_are_honoured() -> None:
    lp = one_hot_log_probs([[1, 2, 3, 4], [2, 2, 0, 3], [1, 1, 1, 1]])
    # sample 0 uses 2 steps, sample 1 uses 3 (the final 3 is padding), sample 2 uses none
    assert greedy_decode(lp, torch.tensor([2, 3, 0])) == [[1, 2], [2], []]


def test_repeat_across_the_length_boundary_is_not_emitted() -> None:
    lp = one_hot_log_probs([[1, 0, 2, 2]])
    assert greedy_decode(lp, torch.tensor([3])) == [[1, 2]]


def test_other_blank_index() -> None:
    lp = one_hot_log_probs([[4, 1, 4, 1, 1]])
    assert greedy_decode(lp, torch.tensor([5]), blank=4) == [[1, 1]]


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        greedy_decode(torch.zeros(3, 2), torch.tensor([3, 3]))
    with pytest.raises(ValueError):
        greedy_decode(torch.zeros(3, 2, 4), torch.tensor([3]))


# --- CtcReader: a model as a recognizer ---------------------------------------------------------------


def _tiny_reader():
    import numpy as np

    from seqlab.tasks.ocr.charset import Charset
    from seqlab.tasks.ocr.config import CRNNConfig
    from seqlab.tasks.ocr.recognizer.ctc import CtcReader
    from seqlab.tasks.ocr.recognizer.models import CRNN, model_config

    charset = Charset.from_name("digits_lower")
    torch.manual_seed(0)
    model = CRNN(model_config(CRNNConfig, channels=[8, 16], hidden_size=16), charset.num_classes, 16).eval()
    with torch.no_grad():  # push the blank down so an untrained model emits characters
        model.fc.bias[0] -= 4.0
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(16, int(w)), dtype=np.uint8) for w in rng.integers(8, 90, size=21)]
    return CtcReader(model, charset, torch.device("cpu")), images


def test_reader_returns_texts_in_input_order(one_thread) -> None:
    """Batches are width-sorted; each text must still land at its image's position."""
    reader, images = _tiny_reader()
    texts = reader.read(images)
    assert len(texts) == len(images) and any(texts)
    assert texts == [reader.read([im])[0] for im in images]  # alone, padding-free: the same answer


def test_reader_loss_is_ctc_per_label_character(one_thread) -> None:
    import torch.nn.functional as F

    from seqlab.tasks.ocr.data import OcrSplit
    from seqlab.tasks.ocr.recognizer.batching import collate

    reader, images = _tiny_reader()
    texts = ["ab", "hello", "42", "x"] * 5 + ["zz"]
    labels = [reader.charset.encode(t) for t in texts]
    data = OcrSplit(images, texts, labels, torch.tensor([im.shape[1] for im in images]).numpy(), [""] * len(texts))
    preds, loss = reader.read_with_loss(data)
    assert preds == reader.read(images)
    total = 0.0
    for im, label in zip(images, labels, strict=True):
        batch = collate([im], [label])
        log_probs, lengths = reader.model(batch.images, batch.widths)
        total += F.ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths, zero_infinity=True,
                            reduction="sum").item()
    assert loss == pytest.approx(total / sum(len(t) for t in texts), rel=1e-4)
