import pytest
import torch

from seqlab.tasks.ocr.config import ColumnBiLSTMConfig, CRNNConfig
from seqlab.tasks.ocr.recognizer.ctc import greedy_decode
from seqlab.tasks.ocr.recognizer.models import CRNN, MODEL_SECTIONS, MODELS, ColumnBiLSTM, model_config

HEIGHT = 8
NUM_CLASSES = 5
TINY = {
    "bilstm": {"projection": 16, "hidden_size": 32, "num_layers": 1, "stride": 1},
    "crnn": {"channels": [8, 16], "hidden_size": 32, "num_layers": 1},
    "crnn-max": {"channels": [8, 16], "hidden_size": 32, "num_layers": 1, "pool": "max"},
    "bilstm-stride": {"projection": 16, "hidden_size": 32, "num_layers": 1, "stride": 4},
    "bilstm-frames": {"projection": 16, "hidden_size": 32, "num_layers": 1, "stride": 4, "frames_per_step": 2},
    "crnn-frames": {"channels": [8, 16], "hidden_size": 32, "num_layers": 1, "frames_per_step": 2},
    # Calamari-style: max-pooled, every row's features into the LSTM; and a conv stack reading twice the rows.
    "crnn-flatten": {"channels": [8, 16], "hidden_size": 32, "num_layers": 1, "pool": "max", "collapse": "flatten"},
    "crnn-rescaled": {"channels": [8, 16], "hidden_size": 32, "num_layers": 1, "input_height": 16},
}
VARIANTS = sorted(TINY)
# Output steps for widths 23, 17, 9: one per column (or ceil per 4-column frame); ceil twice (strided
# convs); floor twice (max-pool); twice as many frames with frames_per_step=2.
EXPECTED_LENGTHS = {"bilstm": [23, 17, 9], "bilstm-stride": [6, 5, 3], "crnn": [6, 5, 3], "crnn-max": [5, 4, 2],
                    "bilstm-frames": [12, 10, 6], "crnn-frames": [12, 10, 6], "crnn-flatten": [5, 4, 2],
                    "crnn-rescaled": [12, 9, 5]}  # widths doubled (46, 34, 18), then ceil twice


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny models on one thread


def tiny(variant: str, **keys: object) -> torch.nn.Module:
    torch.manual_seed(0)
    kind = variant.split("-")[0]
    return MODELS[kind](model_config(MODEL_SECTIONS[kind], **{**TINY[variant], **keys}), NUM_CLASSES, HEIGHT)


def glyph_images(labels: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class is a fixed random 8x6 glyph; words are glyphs with 2 blank columns between them."""
    gen = torch.Generator().manual_seed(123)
    glyphs = (torch.rand(NUM_CLASSES, HEIGHT, 6, generator=gen) > 0.5).float()
    words = [torch.cat([torch.nn.functional.pad(glyphs[c], (1, 1)) for c in lab], dim=1) for lab in labels]
    widths = torch.tensor([w.shape[1] for w in words])
    images = torch.zeros(len(words), 1, HEIGHT, int(widths.max()))
    for i, w in enumerate(words):
        images[i, 0, :, : w.shape[1]] = w
    return images, widths


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_lengths(variant: str) -> None:
    model = tiny(variant)
    images, widths = torch.rand(3, 1, HEIGHT, 23), torch.tensor([23, 17, 9])
    log_probs, lengths = model(images, widths)
    assert lengths.tolist() == EXPECTED_LENGTHS[variant]
    assert lengths.dtype == torch.long
    steps = EXPECTED_LENGTHS[variant][0]
    assert log_probs.shape == (steps, 3, NUM_CLASSES)
    assert torch.allclose(log_probs.exp().sum(2), torch.ones(steps, 3), atol=1e-5)
    assert torch.equal(model.output_lengths(widths), lengths)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_does_not_change_a_sample(variant: str) -> None:
    model = tiny(variant).eval()
    torch.manual_seed(1)
    narrow = torch.rand(1, 1, HEIGHT, 13)
    batch = torch.rand(2, 1, HEIGHT, 40)  # garbage in the padding must not matter either
    batch[1, :, :, :13] = narrow[0]
    with torch.no_grad():
        alone, n_alone = model(narrow, torch.tensor([13]))
        both, n_both = model(batch, torch.tensor([40, 13]))
    n = int(n_alone[0])
    assert n == int(n_both[1]) > 0
    torch.testing.assert_close(both[:n, 1], alone[:n, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ctc_loss_finite_and_backward(variant: str) -> None:
    model = tiny(variant).train()
    images, widths = glyph_images([[1, 2], [3, 3, 4]])
    log_probs, lengths = model(images, widths)
    loss = torch.nn.functional.ctc_loss(log_probs, torch.tensor([1, 2, 3, 3, 4]), lengths, torch.tensor([2, 3]))
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.slow  # trains each variant until it reads its three words
@pytest.mark.parametrize("variant", VARIANTS)
def test_overfits_three_words(variant: str) -> None:
    labels = [[1, 2, 3], [3, 3, 1, 4], [2, 4]]  # includes a doubled symbol
    images, widths = glyph_images(labels)
    targets = torch.tensor([c for lab in labels for c in lab])
    target_lengths = torch.tensor([len(lab) for lab in labels])
    model = tiny(variant)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    decoded: list[list[int]] = []
    for step in range(1, 401):
        model.train()
        log_probs, lengths = model(images, widths)
        loss = torch.nn.functional.ctc_loss(log_probs, targets, lengths, target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:  # stop as soon as eval-mode decoding is right
            model.eval()
            with torch.no_grad():
                decoded = greedy_decode(*model(images, widths))
            if decoded == labels:
                break
    assert decoded == labels


def test_model_config_defaults_and_errors() -> None:
    """A model's keys are its section's, checked as params.yaml is (seqlab.core.config), with the old defaults."""
    assert isinstance(ColumnBiLSTM(model_config(ColumnBiLSTMConfig), 63, 32), ColumnBiLSTM)
    crnn = CRNN(model_config(CRNNConfig, channels=[16, 32, 64], downsample=4), 63, 32)
    assert crnn.downsample == 4 and [s[0].out_channels for s in crnn.stages] == [16, 32, 64]
    with pytest.raises(ValueError, match="^hiden_size is not a known key \\(did you mean hidden_size\\?\\)$"):
        model_config(ColumnBiLSTMConfig, hiden_size=64)
    with pytest.raises(ValueError, match="downsample"):
        model_config(CRNNConfig, channels=[8], downsample=4)
    with pytest.raises(ValueError, match="pool"):
        model_config(CRNNConfig, pool="avg")
    with pytest.raises(ValueError):
        ColumnBiLSTM(model_config(ColumnBiLSTMConfig), 63, 32)(torch.zeros(1, 1, 16, 10), torch.tensor([10]))


# --- PaddedBiLSTM: nn.LSTM(bidirectional=True) with packed sequences, without their cost --------------------

@pytest.mark.parametrize("num_layers", [1, 2])
def test_padded_bilstm_equals_packed_bidirectional_lstm(num_layers: int) -> None:
    """Given an nn.LSTM(bidirectional=True)'s weights (`weight_ih_l1_reverse` -> `backward_layers.1.weight_ih_l0`),
    it gives the packed LSTM's outputs at every valid step, whatever the padding holds."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from seqlab.tasks.ocr.recognizer.models import PaddedBiLSTM

    torch.manual_seed(0)
    reference = torch.nn.LSTM(6, 5, num_layers=num_layers, bidirectional=True).eval()
    padded = PaddedBiLSTM(6, 5, num_layers=num_layers).eval()
    renamed = {}
    for key, value in reference.state_dict().items():
        kind, _, layer = key.rpartition("_l")
        side = "backward_layers" if layer.endswith("_reverse") else "forward_layers"
        renamed[f"{side}.{layer.removesuffix('_reverse')}.{kind}_l0"] = value
    padded.load_state_dict(renamed)  # strict: every key matched
    lengths = torch.tensor([11, 7, 1, 4])
    x = torch.randn(11, 4, 6)  # (T, B, F); steps past each length are garbage, not zeros
    with torch.no_grad():
        packed, _ = reference(pack_padded_sequence(x, lengths, enforce_sorted=False))
        expected, _ = pad_packed_sequence(packed, total_length=11)
        got = padded(x, lengths)
    assert got.shape == expected.shape == (11, 4, 10)
    valid = torch.arange(11)[:, None] < lengths[None, :]
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("variant", ["bilstm", "bilstm-stride", "crnn", "crnn-max"])
def test_batch_padding_does_not_change_outputs_with_two_layers(variant: str) -> None:
    """Every sample of a batch reads the same when the batch is padded wider (eval mode), with stacked layers."""
    model = tiny(variant, num_layers=2).eval()
    widths = torch.tensor([21, 13, 6])
    images = torch.rand(3, 1, HEIGHT, 21)
    wider = torch.rand(3, 1, HEIGHT, 50)  # 29 more columns, and garbage beyond each sample's width
    wider[:, :, :, :21] = images
    for i, w in enumerate(widths.tolist()):
        images[i, :, :, w:] = 0.0
    with torch.no_grad():
        tight, n_tight = model(images, widths)
        padded, n_padded = model(wider, widths)
    assert torch.equal(n_tight, n_padded)
    for i, n in enumerate(n_tight.tolist()):
        torch.testing.assert_close(padded[:n, i], tight[:n, i], atol=1e-5, rtol=1e-5)
