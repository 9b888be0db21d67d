import numpy as np
import pytest
import torch

from seqlab.tasks.ocr.batching import WidthBucketSampler, collate, ctc_min_length, ctc_too_short


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


def test_order_reproducible_and_resumable_by_epoch() -> None:
    widths = list(range(50, 150))
    a = WidthBucketSampler(widths, 10, torch.Generator().manual_seed(7))
    epochs = [list(a) for _ in range(3)]
    assert epochs[0] != epochs[1]
    b = WidthBucketSampler(widths, 10, torch.Generator().manual_seed(7))
    b.set_epoch(2)
    assert list(b) == epochs[2]
    c = WidthBucketSampler(widths, 10, torch.Generator().manual_seed(8))
    assert list(c) != epochs[0]


def test_no_shuffle_sorts_by_width() -> None:
    widths = [30, 10, 20, 10]
    assert list(WidthBucketSampler(widths, 3, shuffle=False)) == [[1, 3, 2], [0]]


def test_collate_pads_normalizes_and_concatenates() -> None:
    a = np.full((32, 10), 255, np.uint8)
    a[:, 0] = 0
    b = np.full((32, 5), 255, np.uint8)
    out = collate([a, b], [[1, 2, 3], [4]], pad_multiple=4)
    assert out["images"].shape == (2, 1, 32, 12) and out["images"].dtype == torch.float32
    assert out["widths"].tolist() == [10, 5]
    assert out["images"][0, 0, :, 0].eq(1).all() and out["images"][0, 0, :, 1:].eq(0).all()
    assert out["images"][1].eq(0).all()  # white and padding are both 0
    assert out["targets"].tolist() == [1, 2, 3, 4]
    assert out["target_lengths"].tolist() == [3, 1]


def test_collate_rejects_mixed_heights() -> None:
    with pytest.raises(ValueError):
        collate([np.zeros((32, 5), np.uint8), np.zeros((16, 5), np.uint8)], [[1], [1]])


def test_ctc_length_check() -> None:
    assert ctc_min_length([1, 1, 2]) == 4
    assert ctc_min_length([]) == 0
    assert ctc_too_short(torch.tensor([3, 4, 2, 0]), [[1, 1, 2], [1, 1, 2], [1, 2], []]) == [0]
