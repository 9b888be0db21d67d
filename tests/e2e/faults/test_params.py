"""Fault injection, bad params: invalid params.yaml edits across all tasks, through the real CLI and `dvc repro`.

Each edit must fail the stage with one `seqlab: error:` line naming the key and the rule, exit non-zero,
print no traceback and leave every previous output (data, models, metrics) byte-identical.
"""

from __future__ import annotations

import pytest

from tests.support import (
    DELETE,
    clone_pipeline,
    edited,
    one_error_line,
    read_params,
    run,
    tree_hashes,
    write_params,
)

OUTPUTS = ("data", "models", "metrics")
VALIDATE = ["validate", "--write", "data/params.ok"]

# id, dotted key, bad value, fragments the one-line message must contain, stage command run
CASES = [
    ("kth-k-zero", "kth.data.k", 0, ["kth.data.k", ">= 1"], VALIDATE),
    ("kth-k-outside-sequence", "kth.data.k", 4, ["kth.data.k must be <= kth.data.min_len"], ["generate", "kth"]),
    ("kth-negative-size", "kth.data.n_train", -400, ["kth.data.n_train", ">= 1"], VALIDATE),
    ("kth-inverted-lengths", "kth.data.min_len", 11, ["kth.data.min_len must be <= kth.data.max_len"], VALIDATE),
    ("kth-generalization-range", "kth.data.generalization_max_len", 10,
     ["kth.data.generalization_max_len must be > kth.data.max_len"], VALIDATE),
    ("kth-hidden-size-string", "kth.model.hidden_size", "48", ["kth.model.hidden_size", "integer"], VALIDATE),
    ("kth-unknown-cell", "kth.model.cell", "transformer", ["kth.model.cell", "one of lstm, gru, rnn"], VALIDATE),
    ("kth-lr-zero", "kth.train.lr", 0, ["kth.train.lr", "> 0"], ["train", "kth"]),
    ("kth-lr-nan", "kth.train.lr", float("nan"), ["kth.train.lr", "finite number"], VALIDATE),
    ("kth-epochs-float", "kth.train.epochs", 2.5, ["kth.train.epochs", "integer"], VALIDATE),
    ("kth-batch-size-zero", "kth.train.batch_size", 0, ["kth.train.batch_size", ">= 1"], ["train", "kth"]),
    ("kth-unknown-scheduler", "kth.train.scheduler", "step", ["kth.train.scheduler", "one of constant, cosine"],
     VALIDATE),
    ("kth-unknown-device", "kth.train.device", "tpu", ["kth.train.device", "one of auto, cpu, cuda"], VALIDATE),
    ("kth-nproc-zero", "kth.train.nproc", 0, ["kth.train.nproc must be >= 1"], ["train", "kth"]),
    ("kth-unknown-precision", "kth.train.precision", "fp8", ["kth.train.precision", "one of auto, fp32, bf16, fp16"],
     VALIDATE),
    ("kth-unknown-model-key", "kth.model.dropout", 0.1, ["kth.model.dropout is not a known key"], VALIDATE),
    ("binary_add-zero-bits", "binary_add.data.max_bits", 0, ["binary_add.data.max_bits", ">= 1"], VALIDATE),
    ("binary_add-inverted-bits", "binary_add.data.min_bits", 20,
     ["binary_add.data.min_bits must be <= binary_add.data.max_bits"], ["generate", "binary_add"]),
    ("binary_add-generalization-range", "binary_add.data.generalization_bits", 16,
     ["binary_add.data.generalization_bits must be > binary_add.data.max_bits"], VALIDATE),
    ("binary_add-unknown-loss", "binary_add.train.loss", "hinge", ["binary_add.train.loss", "one of bce, mse"],
     ["train", "binary_add"]),
    ("binary_add-negative-weight-decay", "binary_add.train.weight_decay", -0.1,
     ["binary_add.train.weight_decay", ">= 0"], VALIDATE),
    ("binary_add-patience-bool", "binary_add.train.patience", True, ["binary_add.train.patience", "integer"], VALIDATE),
    ("seed-string", "seed", "forty-two", ["seed must be an integer"], VALIDATE),
    ("unknown-section-typo", "kht", {"data": {}}, ["kht is not a known key", "did you mean kth"], VALIDATE),
    ("ocr-charset-duplicates", "ocr.data.charset", "aab", ["ocr.data.charset", "'a' twice"], ["generate", "ocr"]),
    ("ocr-charset-empty", "ocr.data.charset", "", ["ocr.data.charset", "non-empty"], VALIDATE),
    ("ocr-charset-whitespace", "ocr.data.charset", "ab\tc ", ["ocr.data.charset", "whitespace"], VALIDATE),
    ("ocr-charset-no-space", "ocr.data.charset", "0123456789abcdefghijklmnopqrstuvwxyz",
     ["ocr.data", "no space", "line images"], VALIDATE),
    ("ocr-lines-words-inverted", "ocr.data.lines.words", [5, 2], ["ocr.data.lines", "2 <= low <= high"], VALIDATE),
    ("ocr-lines-share-above-1", "ocr.data.lines.share", 1.5, ["ocr.data.lines.share", "<= 1"], VALIDATE),
    ("ocr-fonts-empty", "ocr.data.fonts", [], ["ocr.data.fonts must not be empty"], VALIDATE),
    ("ocr-font-unknown", "ocr.data.fonts", ["NoSuchFont.ttf"], ["ocr.data.fonts", "'NoSuchFont.ttf'"], VALIDATE),
    ("ocr-height-too-small", "ocr.data.height", 8, ["ocr.data.height", ">= 16"], VALIDATE),
    ("ocr-count-zero", "ocr.data.counts.val", 0, ["ocr.data.counts.val", ">= 1"], VALIDATE),
    ("ocr-inverted-word-lengths", "ocr.data.words.min_len", 13,
     ["ocr.data.words.min_len must be <= ocr.data.words.max_len"], VALIDATE),
    ("ocr-no-background", "ocr.data.background_weights", {"noise": 0, "plain": 0, "quasicrystal": 0, "image": 0},
     ["ocr.data.background_weights", "positive"], VALIDATE),
    ("ocr-bad-colour", "ocr.data.text_colors", ["black"], ["ocr.data.text_colors", "#rrggbb"], VALIDATE),
    ("ocr-heldout-all-fonts", "ocr.data.heldout_fonts", 1000, ["ocr.data.heldout_fonts", "training fonts"], VALIDATE),
    ("ocr-downsample-not-power-of-2", "ocr.crnn.model.downsample", 3, ["ocr.crnn.model.downsample", "power of 2"],
     ["train", "ocr", "--variant", "crnn"]),
    ("ocr-no-channels", "ocr.crnn.model.channels", [], ["ocr.crnn.model.channels", "not be empty"], VALIDATE),
    ("ocr-missing-bilstm-section", "ocr.bilstm", DELETE, ["ocr.bilstm is missing"],
     ["train", "ocr", "--variant", "bilstm"]),
    ("ocr-dropout-too-high", "ocr.bilstm.model.dropout", 1.5, ["ocr.bilstm.model.dropout", "<= 0.9"], VALIDATE),
    ("ocr-tesseract-psm", "ocr.tesseract.line_psm", 99, ["ocr.tesseract.line_psm", "<= 13"], ["tesseract"]),
]

# A charset missing characters the word mix needs (number_ratio > 0 but no digits) must fail validation, not
# `seqlab generate ocr` (WordSource) after DVC has deleted data/ocr: a cross-key rule of ocr.data.
MISSING_CHARS = pytest.param(
    "ocr-charset-missing-digits", "ocr.data.charset", "abcdefghijklmnopqrstuvwxyz", ["ocr.data", "digit"], VALIDATE,
    id="ocr-charset-missing-digits")

# Cases run through `dvc repro`: DVC must stop at the validate stage and run nothing else.
DVC_CASES = [
    ("kth-typo", "kth.train.batch_sise", 8, ["kth.train.batch_sise is not a known key",
                                             "did you mean kth.train.batch_size"], ["train@kth"]),
    ("binary_add-missing-model", "binary_add.model", DELETE, ["binary_add.model is missing"], ["evaluate@binary_add"]),
    ("seed-negative", "seed", -1, ["seed must be >= 0"], ["evaluate@kth", "evaluate@binary_add"]),
    ("ocr-fonts-empty", "ocr.data.fonts", [], ["ocr.data.fonts must not be empty"], []),
]


@pytest.fixture(scope="module")
def repo(pipeline_template, tmp_path_factory):
    root = clone_pipeline(pipeline_template, tmp_path_factory.mktemp("params") / "repo")
    good = read_params(root)
    snapshot = tree_hashes(root, *OUTPUTS)
    yield root, good
    write_params(root, good)
    assert tree_hashes(root, *OUTPUTS) == snapshot


def test_unedited_params_pass(repo):
    root, good = repo
    write_params(root, good)
    assert run(["seqlab", *VALIDATE], root).returncode == 0


def _apply(good: dict, key: str, value: object) -> dict:
    if key == "kth.train.batch_sise":  # a typo: the right key disappears, the misspelt one appears
        return edited(edited(good, "kth.train.batch_size", DELETE), key, value)
    return edited(good, key, value)


@pytest.mark.parametrize("case, key, value, fragments, command", [*[pytest.param(*c, id=c[0]) for c in CASES],
                                                                   MISSING_CHARS])
def test_bad_edit_fails_the_stage_cleanly(repo, case, key, value, fragments, command):
    root, good = repo
    before = tree_hashes(root, *OUTPUTS)
    write_params(root, _apply(good, key, value))
    try:
        line = one_error_line(run(["seqlab", *command], root, check=False, timeout=120))
    finally:
        write_params(root, good)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert tree_hashes(root, *OUTPUTS) == before


@pytest.mark.parametrize("case, key, value, fragments, targets", [pytest.param(*c, id=c[0]) for c in DVC_CASES])
def test_dvc_repro_stops_at_validate(repo, case, key, value, fragments, targets):
    root, good = repo
    before = tree_hashes(root, *OUTPUTS)
    write_params(root, _apply(good, key, value))
    try:
        proc = run(["dvc", "repro", *targets], root, check=False)
    finally:
        write_params(root, good)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    stages = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}
    assert stages == {"validate"}, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("seqlab: error: ")]
    assert len(errors) == 1 and all(f in errors[0] for f in fragments), out[-3000:]
    # DVC removes the failed stage's own marker (params are not valid any more); nothing else may change.
    after = tree_hashes(root, *OUTPUTS)
    assert not (root / "data/params.ok").exists()
    assert after == {k: v for k, v in before.items() if k != "data/params.ok"}
    run(["seqlab", *VALIDATE], root)  # put the marker back for the next case

