import math

import pytest
import torch

from seqlab.tasks.ocr.ctc import greedy_decode


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
