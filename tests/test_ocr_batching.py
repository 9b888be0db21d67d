import numpy as np
import pytest
import torch

from seqlab.tasks.ocr.batching import (
    OcrBatch,
    WidthBucketSampler,
    collate,
    iterate_batches,
)
from seqlab.tasks.ocr.data import OcrSplit


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
    assert out.images.shape == (2, 1, 32, 12) and out.images.dtype == torch.float32
    assert out.widths.tolist() == [10, 5]
    assert out.images[0, 0, :, 0].eq(1).all() and out.images[0, 0, :, 1:].eq(0).all()
    assert out.images[1].eq(0).all()  # white and padding are both 0
    assert out.targets.tolist() == [1, 2, 3, 4]
    assert out.target_lengths.tolist() == [3, 1]
    assert out.index.tolist() == [0, 1] and out.size == 2
    assert collate([a, b], [[1], [2]], index=[7, 3]).index.tolist() == [7, 3]


def _split(widths: list[int], height: int = 8) -> OcrSplit:
    images = [np.full((height, w), 255 - w, np.uint8) for w in widths]
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
                assert batch.widths[row] == data.widths[i]
                assert targets[row].tolist() == data.labels[i]
                ink = batch.images[row, 0, 0, 0].item()
                assert ink == pytest.approx(1 - (255 - data.widths[i]) / 255)
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
