"""Data generation invariants, padding rule, batching, model shapes, scoring, evaluation tables and predict
parsing for kth and binary_add."""

import io
import re

import numpy as np
import pytest
import torch

from seqlab.core.sections import RecurrentModelConfig
from seqlab.tasks.sequence.binary_add import (
    BinaryAddTask,
    encode_pair,
    long_run_pair,
    make_pairs,
    parse_operands,
    random_int_with_bits,
)
from seqlab.tasks.sequence.common import (
    PaddedSplit,
    SequenceBatch,
    SequenceClassifier,
    SequenceTagger,
    flatten_rows,
    iterate_batches,
    unflatten,
)
from seqlab.tasks.sequence.kth import KthTask, make_sequences, parse_digits
from tests.support import CarryAdder


def test_kth_sequences_target_is_kth_digit():
    rng = np.random.default_rng(0)
    a = make_sequences(rng, 500, 3, 9, k=3)
    rows = np.split(a["digits"], np.cumsum(a["lengths"])[:-1])
    assert all(3 <= len(r) <= 9 for r in rows)
    assert all(r[2] == t for r, t in zip(rows, a["targets"]))
    assert set(np.unique(a["digits"])) <= set(range(10))


def test_example_from_the_spec():
    digits = parse_digits("9 7 0 5 6")
    assert digits == [9, 7, 0, 5, 6] and digits[3 - 1] == 0
    assert parse_digits("97056") == digits


@pytest.mark.parametrize("line", ["", "12a4", "1,2,3", "-1 2 3"])
def test_kth_parse_rejects_non_digits(line):
    with pytest.raises(ValueError):
        parse_digits(line)


def test_binary_padding_rule_and_lsb_first():
    x, y = encode_pair(0b1011, 0b110)  # 11 + 6 = 17 = 0b10001: the sum has one more bit
    assert x.shape == (5, 2) and y.shape == (5,)
    assert x[:, 0].tolist() == [1, 1, 0, 1, 0]  # 1011 LSB first, left-padded with one 0
    assert x[:, 1].tolist() == [0, 1, 1, 0, 0]
    assert y.tolist() == [1, 0, 0, 0, 1]
    x, y = encode_pair(0, 0)
    assert x.shape == (1, 2) and y.tolist() == [0]


@pytest.mark.parametrize("long_run_ratio", [0.0, 0.5])
def test_binary_pairs_are_correct_sums_with_bit_lengths_in_range(long_run_ratio):
    rng = np.random.default_rng(1)
    a = make_pairs(rng, 200, 3, 70, long_run_ratio)
    starts = np.concatenate([[0], np.cumsum(a["lengths"])[:-1]])
    for s, n, ob in zip(starts, a["lengths"], a["op_bits"]):
        bits = a["inputs"][s:s + n]
        val = lambda col: sum(int(b) << i for i, b in enumerate(col))  # noqa: E731
        total = val(a["sums"][s:s + n])
        assert val(bits[:, 0]) + val(bits[:, 1]) == total
        assert max(val(bits[:, 0]).bit_length(), val(bits[:, 1]).bit_length()) == ob
        assert 3 <= ob <= 70 and n == max(1, total.bit_length())


def _longest_run(a: int, b: int) -> tuple[int, str]:
    """The longest run of positions of one kind (g: both bits 1, k: both 0, p: they differ)."""
    kinds = "".join("g" if a >> i & b >> i & 1 else "p" if (a ^ b) >> i & 1 else "k"
                    for i in range(max(a.bit_length(), b.bit_length())))
    return max((len(m.group()), m.group()[0]) for m in re.finditer(r"g+|k+|p+", kinds))


def test_long_run_pairs_have_long_runs_of_every_kind():
    rng = np.random.default_rng(3)
    runs = [_longest_run(*long_run_pair(rng, 16)) for _ in range(600)]
    uniform = [_longest_run(random_int_with_bits(rng, 16), random_int_with_bits(rng, 16))[0] for _ in range(600)]
    long_share = lambda lengths: np.mean(np.array(lengths) >= 10)  # noqa: E731
    assert long_share([n for n, _ in runs]) > 5 * long_share(uniform)
    assert {kind for n, kind in runs if n >= 10} == {"g", "k", "p"}
    assert all(max(x.bit_length(), y.bit_length()) == 16 for x, y in (long_run_pair(rng, 16) for _ in range(200)))
    a = make_pairs(np.random.default_rng(4), 300, 3, 16, long_run_ratio=1.0)  # correct sums, checked above
    assert a["op_bits"].min() >= 3 and a["op_bits"].max() == 16


def test_random_int_has_exact_bit_length():
    rng = np.random.default_rng(2)
    assert all(random_int_with_bits(rng, b).bit_length() == b for b in (0, 1, 2, 63, 64, 65, 200))


@pytest.mark.parametrize("line, expected", [("1011 110", (11, 6)), ("  0 0 ", (0, 0)), ("1 " + "1" * 300, (1, 2**300 - 1))])
def test_binary_parse(line, expected):
    assert parse_operands(line) == expected


@pytest.mark.parametrize("line", ["101", "1 2", "10 11 1", "abc def"])
def test_binary_parse_rejects(line):
    with pytest.raises(ValueError):
        parse_operands(line)


def test_flatten_unflatten_round_trip():
    rows = [np.array([1, 2, 3], np.uint8), np.array([4], np.uint8), np.array([5, 6], np.uint8)]
    flat, lengths = flatten_rows(rows)
    padded = unflatten(flat, lengths)
    assert padded.tolist() == [[1, 2, 3], [4, 0, 0], [5, 6, 0]]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_models_shapes_and_padding_invariance(cell):
    torch.manual_seed(0)
    clf = SequenceClassifier(RecurrentModelConfig(cell=cell, hidden_size=8, num_layers=2), input_size=10, num_classes=10).eval()
    x = torch.randn(3, 7, 10)
    lengths = torch.tensor([7, 3, 5])
    out = clf(x, lengths)
    assert out.shape == (3, 10)
    alone = clf(x[1:2, :3], lengths[1:2])  # same sequence without padding
    assert torch.allclose(out[1], alone[0], atol=1e-6)
    tagger = SequenceTagger(RecurrentModelConfig(cell=cell, hidden_size=8, num_layers=1), input_size=2).eval()
    pairs = torch.randn(2, 6, 2)  # sample 1 has 4 real steps and random garbage after them
    seq = tagger(pairs, torch.tensor([6, 4]))
    assert seq.shape == (2, 6)
    assert torch.allclose(seq[1, :4], tagger(pairs[1:2, :4], torch.tensor([4]))[0], atol=1e-6)


class _Echo(torch.nn.Module):
    """A stand-in model: kth answers the k-th digit via one-hot lookup; checks predict's plumbing only."""

    def forward(self, x, lengths):
        return x[:, 2, :] * 10


def test_kth_predict_answers_good_lines_and_reports_bad_ones():
    out, err = io.StringIO(), io.StringIO()
    failures = KthTask().predict(_Echo(), {"k": 3}, ["9 7 0 5 6\n", "12\n", "x1\n", "1234567890123456789012345\n"], out, err)
    assert out.getvalue().split("\n") == ["0", "", "", "3", ""]  # one line per input line, empty when refused
    assert failures == 2
    assert "line 2" in err.getvalue() and "fewer than k=3" in err.getvalue() and "line 3" in err.getvalue()




def test_binary_predict_decodes_msb_first_and_long_inputs():
    out, err = io.StringIO(), io.StringIO()
    a, b = 2**200 + 12345, 2**199 + 99
    lines = ["1011 110", "0 0", "12 1", f"{a:b} {b:b}"]
    failures = BinaryAddTask().predict(CarryAdder(), {}, lines, out, err)
    assert out.getvalue().splitlines() == ["10001", "0", "", f"{a + b:b}"]
    assert failures == 1 and "line 3" in err.getvalue()


def test_batches_are_typed_trimmed_and_cover_the_split_once():
    lengths = torch.tensor([3, 1, 2, 5, 4])
    split = PaddedSplit(x=torch.arange(25).view(5, 5), lengths=lengths, y=torch.arange(5), group=lengths)
    batches = list(iterate_batches(split, 2, torch.Generator().manual_seed(0), encode=lambda x: x * 10))
    assert [b.size for b in batches] == [2, 2, 1]
    assert all(isinstance(b, SequenceBatch) and b.x.shape[1] == int(b.lengths.max()) for b in batches)
    assert sorted(torch.cat([b.y for b in batches]).tolist()) == [0, 1, 2, 3, 4]
    first = batches[0]
    assert torch.equal(first.x, split.x[first.y, :first.x.shape[1]] * 10)  # encoded, rows follow their targets
    assert first.to(torch.device("cpu")).lengths.tolist() == first.lengths.tolist()


def test_binary_add_loss_kind_is_given_not_configured():
    from seqlab.core.config import parse_params
    from tests.support import load_raw_params

    raw = load_raw_params()
    raw["binary_add"]["train"]["loss"] = "mse"
    section = parse_params(raw).binary_add
    assert BinaryAddTask.for_training(section, None).loss_kind == "mse"
    assert BinaryAddTask.from_checkpoint({"train": {"loss": "mse"}}).loss_kind == "mse"
    logits, y = torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, 0.0]])
    batch = SequenceBatch(x=torch.zeros(1, 2, 2), lengths=torch.tensor([1]), y=y, group=torch.tensor([1]))
    mse, _ = BinaryAddTask("mse").score_batch(logits, batch)
    bce, outcomes = BinaryAddTask("bce").score_batch(logits, batch)
    assert mse == pytest.approx(0.25) and bce == pytest.approx(np.log(2))  # only the valid first bit counts
    assert outcomes["exact_match"].tolist() == [False] and outcomes["bit_accuracy"].tolist() == [False]


def test_generate_evaluate_tables_and_plot_spec(tmp_path, monkeypatch):
    """kth end to end in-process on a tiny split: files per split, per-length table, plot drawn from it."""
    from seqlab.core.config import parse_params
    from tests.support import tiny_params

    monkeypatch.chdir(tmp_path)
    raw = tiny_params()
    raw["kth"]["data"].update(n_train=20, n_val=10, n_test=30, n_generalization=12)
    data = parse_params(raw).kth.data
    stats = KthTask.generate(data, seed=1)
    assert stats["generalization"] == {"n": 12, "length": [data.max_len + 1, data.generalization_max_len]}
    assert sorted(p.name for p in (tmp_path / "data" / "kth").iterdir()) == [
        "generalization.npz", "test.npz", "train.npz", "val.npz"]
    task = KthTask()
    torch.manual_seed(0)
    model = task.build_model(task.model_section({"cell": "gru", "hidden_size": 4, "num_layers": 1}), {}).eval()
    with torch.no_grad():
        metrics, tables, figures = task.evaluate(model, torch.device("cpu"))
        val = task.validation_metrics(model, task.load_split("val"), torch.device("cpu"))
    assert set(val) == {"val_loss", "val_accuracy"}
    rows = tables["by_length"]
    assert {r["split"] for r in rows} == {"test", "generalization"}
    assert sum(r["count"] for r in rows) == 42
    assert metrics["test"]["n"] == 30 and metrics["test"]["max_len"] <= data.max_len
    assert set(metrics) == {"test", "generalization"}  # figures by split only: the per-length breakdown is the table
    (name, draw), = figures.items()
    draw(tmp_path / name)
    assert name == "by_length.png" and (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
