import numpy as np
import pytest
import torch

from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.recognizer.batching import (
    OcrBatch,
    WidthBucketSampler,
    collate,
    iterate_batches,
)


def test_buckets_cover_all_indices_once_and_keep_last_partial() -> None:
    widths = np.random.default_rng(0).integers(20, 200, size=103)
    sampler = WidthBucketSampler(widths, 8, torch.Generator().manual_seed(1), bucket_batches=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 13
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert sorted(len(b) for b in batches)[0] == 103 % 8


def test_buckets_group_similar_widths() -> None:
    widths = np.random.default_rng(0).integers(20, 200, size=1024)
    batches = list(WidthBucketSampler(widths, 16, torch.Generator().manual_seed(0), bucket_batches=16))
    spread = np.mean([np.ptp(widths[b]) for b in batches])
    random_spread = np.mean([np.ptp(widths[i:i + 16]) for i in range(0, 1024, 16)])
    assert spread < random_spread / 4


def test_order_depends_only_on_seed_and_pass() -> None:
    widths = list(range(50, 150))
    a = WidthBucketSampler(widths, 10, torch.Generator().manual_seed(7))
    passes = [list(a) for _ in range(3)]
    assert passes[0] != passes[1]
    b = WidthBucketSampler(widths, 10, torch.Generator().manual_seed(7))
    assert [list(b) for _ in range(3)] == passes
    c = WidthBucketSampler(widths, 10, torch.Generator().manual_seed(8))
    assert list(c) != passes[0]


def test_no_shuffle_sorts_by_width() -> None:
    widths = [30, 10, 20, 10]
    assert list(WidthBucketSampler(widths, 3, shuffle=False)) == [[1, 3, 2], [0]]


def test_collate_pads_normalizes_and_concatenates() -> None:
    a = np.full((32, 10), 255, np.uint8)
    a[:, 0] = 0
    b = np.full((32, 5), 255, np.uint8)
    out = collate([a, b], [[1, 2, 3], [4]], pad_multiple=4)
    # a's ink touches its left edge: it gains MARGIN * 32 = 8 columns of ground on the left, and its 9 empty
    # columns on the right already suffice; b is blank (no ink), so it keeps its width.
    assert out.images.shape == (2, 1, 32, 20) and out.images.dtype == torch.float32
    assert out.widths.tolist() == [18, 5]
    assert out.images[0, 0, :, 8].eq(1).all()
    assert out.images[0, 0, :, :8].eq(0).all() and out.images[0, 0, :, 9:].eq(0).all()
    assert out.images[1].eq(0).all()  # white and padding are both 0
    assert out.targets.tolist() == [1, 2, 3, 4]
    assert out.target_lengths.tolist() == [3, 1]
    assert out.index.tolist() == [0, 1] and out.size == 2
    assert collate([a, b], [[1], [2]], index=[7, 3]).index.tolist() == [7, 3]


def _split(widths: list[int], height: int = 8) -> OcrSplit:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(height, w), dtype=np.uint8) for w in widths]
    labels = [[1 + i % 3] * (1 + i % 2) for i in range(len(widths))]
    return OcrSplit(images, ["x"] * len(widths), labels, np.array(widths, dtype=np.int64), [""] * len(widths))


def test_iterate_batches_keeps_each_sample_with_its_label_and_index() -> None:
    data = _split([13, 40, 9, 27, 9, 31, 18])
    for generator in (None, torch.Generator().manual_seed(3)):
        seen = []
        for batch in iterate_batches(data, 3, generator):
            assert isinstance(batch, OcrBatch) and batch.images.shape[3] % 8 == 0
            targets = batch.targets.split(batch.target_lengths.tolist())
            for row, i in enumerate(batch.index.tolist()):
                assert targets[row].tolist() == data.labels[i]
                single = collate([data.images[i]], [data.labels[i]], pad_multiple=8)
                alone, w = single.images[0], int(single.widths[0])
                assert batch.widths[row] == w
                assert torch.equal(batch.images[row, :, :, :w], alone[:, :, :w])  # peers do not change a sample
                assert batch.images[row, :, :, w:].eq(0).all()
            seen += batch.index.tolist()
        assert sorted(seen) == list(range(len(data)))
    eval_order = [i for b in iterate_batches(data, 3, None) for i in b.index.tolist()]
    assert eval_order == [2, 4, 0, 6, 3, 5, 1]  # sorted by width, ties in input order


def test_batch_to_moves_every_tensor() -> None:
    batch = collate([np.zeros((8, 5), np.uint8)], [[1, 2]])
    moved = batch.to(torch.device("meta"))
    assert {t.device.type for t in (moved.images, moved.widths, moved.targets, moved.target_lengths, moved.index)} \
        == {"meta"}
    assert moved.size == 1 and batch.images.device.type == "cpu"


def test_collate_rejects_mixed_heights() -> None:
    with pytest.raises(ValueError):
        collate([np.zeros((32, 5), np.uint8), np.zeros((16, 5), np.uint8)], [[1], [1]])


# --- training-time augmentation through iterate_batches ------------------------------------------------------

def _augment_config(**overrides):
    from seqlab.tasks.ocr.config import AugmentConfig
    from tests.support import load_raw_params

    return AugmentConfig(**{**load_raw_params()["ocr"]["augment"], **overrides})


def _word_split(n: int = 18, height: int = 32) -> OcrSplit:
    """Dark words on white at `height` rows (Pillow's built-in font), labels one class per letter."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=22)
    texts = [("abcdefghij"[i % 10] + "klmnop"[i % 6] * (1 + i % 3) + "qrst"[i % 4]) for i in range(n)]
    images = []
    for text in texts:
        im = Image.new("L", (int(font.getlength(text)) + 8, height), 255)
        ImageDraw.Draw(im).text((4, 4), text, fill=0, font=font)
        images.append(np.asarray(im))
    labels = [[ord(c) - ord("a") + 1 for c in t] for t in texts]
    widths = np.array([im.shape[1] for im in images], dtype=np.int64)
    return OcrSplit(images, texts, labels, widths, [""] * n)


def _by_index(batches: list[OcrBatch]) -> dict[int, tuple[torch.Tensor, int, list[int]]]:
    """Sample index -> (its image within its width, its width, its target), from a pass of batches."""
    out = {}
    for batch in batches:
        targets = batch.targets.split(batch.target_lengths.tolist())
        for row, i in enumerate(batch.index.tolist()):
            w = int(batch.widths[row])
            out[i] = (batch.images[row, :, :, :w], w, targets[row].tolist())
    return out


def test_augmented_batches_repeat_per_seed_and_change_per_epoch() -> None:
    data, cfg = _word_split(), _augment_config()
    assert cfg.enabled, "params.yaml trains with augmentation"

    def epoch(seed: int, config=cfg) -> list[OcrBatch]:
        return list(iterate_batches(data, 4, torch.Generator().manual_seed(seed), augment_config=config))

    first, again, other = epoch(11), epoch(11), epoch(12)
    assert len(first) == len(again)
    for a, b in zip(first, again, strict=True):  # same seed: bit-identical batches (a resumed epoch)
        assert all(torch.equal(getattr(a, f), getattr(b, f))
                   for f in ("images", "widths", "targets", "target_lengths", "index"))
    plain, aug, fresh = _by_index(epoch(11, None)), _by_index(first), _by_index(other)
    assert sorted(aug) == sorted(fresh) == list(range(len(data)))
    for i in range(len(data)):  # augmentation never touches labels, targets or the sample's identity
        assert aug[i][2] == fresh[i][2] == plain[i][2] == data.labels[i]
        image, w, _ = aug[i]
        assert image.shape[-1] == w and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    changed = sum(not torch.equal(aug[i][0], plain[i][0]) for i in range(len(data)))
    renewed = sum(not torch.equal(aug[i][0], fresh[i][0]) for i in range(len(data)))
    assert changed >= len(data) // 2, f"only {changed} of {len(data)} samples augmented"
    assert renewed >= len(data) // 2, f"only {renewed} of {len(data)} samples augmented anew in another epoch"
    for batch in first:  # padding beyond each (possibly new) width is still exactly 0
        cols = torch.arange(batch.images.shape[3])[None, :] >= batch.widths[:, None]
        assert batch.images.permute(1, 2, 0, 3)[:, :, cols].eq(0).all()


def test_eval_batches_and_disabled_augmentation_are_not_augmented() -> None:
    data, cfg = _word_split(), _augment_config()
    plain = list(iterate_batches(data, 4, None))
    evaluated = list(iterate_batches(data, 4, None, augment_config=cfg))  # generator None: evaluation
    assert len(plain) == len(evaluated)
    for a, b in zip(plain, evaluated, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.widths, b.widths)
        assert torch.equal(a.index, b.index) and torch.equal(a.targets, b.targets)
    off = _by_index(list(iterate_batches(data, 4, torch.Generator().manual_seed(11),
                                         augment_config=_augment_config(enabled=False))))
    clean = _by_index(list(iterate_batches(data, 4, torch.Generator().manual_seed(11))))
    assert all(torch.equal(off[i][0], clean[i][0]) for i in range(len(data)))


def test_collate_gives_tight_crops_the_margins_of_rendered_words() -> None:
    tight = np.full((32, 20), 255, np.uint8)
    tight[4:28, :] = 0  # ink from the first to the last column
    loose = np.full((32, 40), 255, np.uint8)
    loose[4:28, 10:30] = 0  # 10 columns of ground on each side already
    out = collate([tight, loose], [[1], [2]], pad_multiple=8)
    assert out.widths.tolist() == [20 + 2 * 8, 40]
    ink_cols = out.images[:, 0].amax(dim=1) > 0.5
    assert ink_cols[0].nonzero().flatten().tolist() == list(range(8, 28))
    assert ink_cols[1].nonzero().flatten().tolist() == list(range(10, 30))
