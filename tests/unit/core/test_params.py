"""Typed params: strict sections, one-line errors naming the params.yaml key, field names = constructor
arguments, a torch-free load, and checkpoints of the previous code still loading."""

import subprocess
import sys

import pydantic
import pytest
import torch
import yaml

from seqlab.core.checkpoint import save_checkpoint
from seqlab.core.config import load_params, params_model, parse_params
from seqlab.core.errors import ParamsError
from seqlab.core.registry import entry
from seqlab.core.sections import RecurrentModelConfig
from seqlab.tasks.ocr.config import OcrConfig
from seqlab.tasks.ocr.recognizer.models import DEFAULTS, MODELS
from seqlab.tasks.sequence.common import SequenceClassifier, SequenceTagger
from seqlab.tracking.runs import flatten
from tests.e2e.faults.test_params import CASES, DVC_CASES, MISSING_CHARS, _apply
from tests.support import DELETE, edited


def test_repo_params_are_valid(raw_params):
    params = parse_params(raw_params)
    assert params.kth.data.k == raw_params["kth"]["data"]["k"]
    assert isinstance(params.kth.train.lr, float)
    run = params.section("ocr").run("crnn")  # the variant's model/train plus the shared augmentation
    assert (run.model, run.train, run.augment) == (params.ocr.crnn.model, params.ocr.crnn.train, params.ocr.augment)
    assert params.section("binary_add").run().train.loss == raw_params["binary_add"]["train"]["loss"]


def test_a_training_run_needs_a_variant_exactly_where_the_task_has_variants(raw_params):
    params = parse_params(raw_params)
    assert params.section("kth").run() is params.kth
    with pytest.raises(ValueError, match="^KthConfig has no variants \\(got 'crnn'\\)$"):
        params.section("kth").run("crnn")
    with pytest.raises(ValueError, match="^unknown OCR variant None \\(choose from bilstm, crnn\\)$"):
        params.section("ocr").run()


def test_model_dump_round_trips(raw_params):
    """params.yaml's content is the dump of its typed form (no defaults added, nothing dropped)."""
    params = parse_params(raw_params)
    assert parse_params(params.model_dump()) == params
    assert flatten(params.model_dump()) == flatten(raw_params)


@pytest.mark.parametrize("key, value, message", [
    ("kth.data.k", 5, "kth.data.k must be <= kth.data.min_len, so every sequence has a k-th digit (got k=5, min_len=3)"),
    ("kth.data.k", 0, "kth.data.k must be >= 1 (got 0)"),
    ("kth.data.k", "3", "kth.data.k must be an integer (got '3')"),
    ("kth.data.k", True, "kth.data.k must be an integer (got True)"),
    ("kth.data.min_len", 30, "kth.data.min_len must be <= kth.data.max_len"),
    ("kth.data.n_train", -5, "kth.data.n_train must be >= 1"),
    ("kth.data.generalization_max_len", 10, "kth.data.generalization_max_len must be > kth.data.max_len"),
    ("kth.model.cell", "transformer", "kth.model.cell must be one of lstm, gru, rnn (got 'transformer')"),
    ("kth.model.hidden_size", 0, "kth.model.hidden_size must be >= 1"),
    ("kth.train.lr", 0, "kth.train.lr must be > 0"),
    ("kth.train.lr", True, "kth.train.lr must be a finite number"),
    ("kth.train.lr", "0.1", "kth.train.lr must be a finite number"),
    ("kth.train.lr", float("inf"), "kth.train.lr must be a finite number"),
    ("kth.train.epochs", 2.5, "kth.train.epochs must be an integer"),
    ("kth.train.scheduler", "step", "kth.train.scheduler must be one of"),
    ("kth.train.batch_sise", 4, "kth.train.batch_sise is not a known key (did you mean kth.train.batch_size?)"),
    ("kth.train.batch_size", DELETE, "kth.train.batch_size is missing"),
    ("kth.model.zzz", 1, "kth.model.zzz is not a known key (allowed: cell, hidden_size, num_layers)"),
    ("binary_add.data.min_bits", 20, "binary_add.data.min_bits must be <= binary_add.data.max_bits"),
    ("binary_add.train.loss", "hinge", "binary_add.train.loss must be one of bce, mse"),
    ("binary_add.data.generalization_bits", 8, "binary_add.data.generalization_bits must be > binary_add.data.max_bits"),
    ("binary_add.data.long_run_ratio", 1.5, "binary_add.data.long_run_ratio must be <= 1 (got 1.5)"),
    ("binary_add.model", DELETE, "binary_add.model is missing"),
    ("seed", -1, "seed must be >= 0"),
    ("kth.data", [1, 2], "kth.data must be a mapping of keys (got list)"),
    ("ocr.data.words.number_ratio", 0.5, "ocr.data.words.dictionary_ratio + ocr.data.words.number_ratio + "
                                         "ocr.data.words.mixed_ratio must be <= 1"),
    ("ocr.data.fonts", "some", "ocr.data.fonts must be 'all' (got 'some')"),
    ("ocr.data.fonts", 3, "ocr.data.fonts must be 'all' or a list of font file names (got 3)"),
    ("ocr.data.heldout_fonts", True, "ocr.data.heldout_fonts must be a number of fonts or a list of font file names"),
    ("ocr.data.heldout_fonts", 0, "ocr.data.heldout_fonts must be >= 1 (got 0)"),
    ("ocr.data.heldout_fonts", ["NoSuchFont.ttf"], "ocr.data.heldout_fonts: 'NoSuchFont.ttf' is not in ocr.data.fonts"),
    ("ocr.data.text_colors", ["#000000", "#000000"], "ocr.data.text_colors has duplicate entries"),
    ("ocr.data.text_colors", ["#000000", ""], "ocr.data.text_colors[1] must be a non-empty string"),
    ("ocr.crnn.model.channels", [8, 0], "ocr.crnn.model.channels[1] must be >= 1 (got 0)"),
    ("ocr.crnn.model.downsample", 16, "ocr.crnn.model.downsample must be a power of 2 up to 2**len(channels) (got 16)"),
    ("ocr.crnn.model.pool", "avg", "ocr.crnn.model.pool must be one of stride, max"),
    ("ocr.bilstm.model.hiden_size", 8, "ocr.bilstm.model.hiden_size is not a known key (did you mean "
                                       "ocr.bilstm.model.hidden_size?)"),
    ("ocr.bilstm.train.device", "tpu", "ocr.bilstm.train.device must be one of auto, cpu, cuda"),
    # fonts of the families reserved for evaluation, by trdg-style file name or Debian <package>/<file>
    ("ocr.data.fonts", ["Lato-Regular.ttf", "DejaVuSans.ttf"],
     "ocr.data.fonts: 'DejaVuSans.ttf' is in the reserved evaluation family DejaVu"),
    ("ocr.data.fonts", ["fonts-croscore/Arimo-Regular.ttf"],
     "ocr.data.fonts: 'fonts-croscore/Arimo-Regular.ttf' is in the reserved evaluation family Croscore"),
    ("ocr.data.fonts", ["LiberationSerif-Regular.ttf"],
     "ocr.data.fonts: 'LiberationSerif-Regular.ttf' is in the reserved evaluation family Liberation"),
    ("ocr.data.heldout_fonts", ["Tinos-Bold.ttf"], "ocr.data.heldout_fonts: 'Tinos-Bold.ttf' is in the reserved"),
    ("ocr.data.font_sources", ["trdg", "trdg"], "ocr.data.font_sources has duplicate entries"),
    ("ocr.data.font_sources", ["google"], "ocr.data.font_sources[0] must be one of trdg, debian (got 'google')"),
    ("ocr.data.font_sources", [], "ocr.data.font_sources must have 1 or more entries (got [])"),
    ("ocr.data.words.case_mix.upper", -0.1, "ocr.data.words.case_mix.upper must be >= 0 (got -0.1)"),
    ("ocr.reserved.count", 0, "ocr.reserved.count must be >= 1 (got 0)"),
    ("ocr.data.lines.prose", 1.5, "ocr.data.lines.prose must be <= 1 (got 1.5)"),
    ("ocr.data.lines.chars", [70, 8], "ocr.data.lines.chars must be [low, high] with low <= high (got [70, 8])"),
    ("ocr.data.lines.chars", [0, 8], "ocr.data.lines.chars[0] must be >= 1 (got 0)"),
    ("ocr.data.lines.prose", DELETE, "ocr.data.lines.prose is missing"),
    ("ocr.augment.p_blur", 1.5, "ocr.augment.p_blur must be <= 1 (got 1.5)"),
    ("ocr.augment.zoom", [2, 1], "ocr.augment.zoom must be [low, high] with low <= high (got [2.0, 1.0])"),
    ("ocr.augment.zoom", [0.5], "ocr.augment.zoom must have 2 or more entries (got [0.5])"),
    ("ocr.augment.zoom", [0.0, 1.0], "ocr.augment.zoom is out of its allowed range (got [0.0, 1.0])"),
    ("ocr.augment.zoom", [0.5, 1.0, 1.5], "ocr.augment.zoom must have 2 or fewer entries"),
    ("ocr.augment.rotate", [-40, 4], "ocr.augment.rotate is out of its allowed range"),
    ("ocr.augment.enabled", "yes", "ocr.augment.enabled must be true or false (got 'yes')"),
    ("ocr.augment.p_sharpen", 0.5, "ocr.augment.p_sharpen is not a known key"),
    ("ocr.augment.zooom", [0.5, 1.0], "ocr.augment.zooom is not a known key (did you mean ocr.augment.zoom?)"),
    ("ocr.augment.p_zoom", DELETE, "ocr.augment.p_zoom is missing"),
])
def test_invalid_params_name_key_and_rule(raw_params, key, value, message):
    with pytest.raises(ParamsError) as err:
        parse_params(edited(raw_params, key, value))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("case, key, value, fragments", [
    pytest.param(*c[:4], id=c[0]) for c in [*CASES, MISSING_CHARS.values, *DVC_CASES]])
def test_every_bad_edit_of_the_cli_suite_fails_validation(raw_params, case, key, value, fragments):
    """The bad edits tests/e2e/faults/test_params.py runs through the CLI and dvc (e2e), checked in-process."""
    with pytest.raises(ParamsError) as err:
        parse_params(_apply(raw_params, key, value))
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_unknown_top_level_section(raw_params):
    raw_params["kht"] = {}
    with pytest.raises(ParamsError, match=r"kht is not a known key \(did you mean kth\?\)"):
        parse_params(raw_params)


def test_not_a_mapping():
    with pytest.raises(ParamsError, match="params.yaml must be a mapping of keys"):
        parse_params([1, 2])


def test_sections_are_frozen_and_strict(raw_params):
    params = parse_params(raw_params)
    with pytest.raises(pydantic.ValidationError):
        params.kth.train.lr = 1.0  # type: ignore[misc]
    assert parse_params(edited(raw_params, "kth.train.weight_decay", 0)).kth.train.weight_decay == 0.0  # int -> float
    for value in ("48", 48.0, True):
        with pytest.raises(ParamsError, match="kth.model.hidden_size must be an integer"):
            parse_params(edited(raw_params, "kth.model.hidden_size", value))


def test_load_params_reports_yaml_syntax_and_missing_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("kth: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML at line"):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad.write_text("")
    with pytest.raises(ParamsError, match="is empty"):
        load_params(bad)


def test_flatten_for_mlflow():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "1,2", "d": "x"}


def test_params_yaml_round_trips(raw_params, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw_params))
    assert load_params(path) == parse_params(raw_params)  # every section, not one key


@pytest.mark.slow  # a fresh Python process
def test_loading_params_imports_neither_torch_nor_trdg(tmp_path):
    code = ("import sys; from seqlab.core.config import load_params; load_params(sys.argv[1]); "
            "import seqlab.tasks.ocr.config; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trdg')))")
    from tests.support import REPO

    out = subprocess.run([sys.executable, "-c", code, str(REPO / "params.yaml")], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# --- field names are the constructors' arguments -------------------------------------------------------------

def test_every_ocr_variant_has_a_section_and_a_model():
    shared = {"data", "reserved", "augment", "tesseract", "decode", "pages", "finetune"}
    assert set(entry("ocr").variants) == set(MODELS) == set(OcrConfig.model_fields) - shared


def test_model_sections_feed_their_constructors(raw_params):
    params = parse_params(raw_params)
    torch.manual_seed(0)
    for variant, cls in MODELS.items():
        section = params.ocr.variant(variant).model
        assert set(DEFAULTS[type(section)]) == set(type(section).model_fields)  # an old checkpoint reads back whole
        model = cls(section, 37, params.ocr.data.height)
        assert model.frames == section.frames_per_step
    assert isinstance(SequenceClassifier(params.kth.model, input_size=10, num_classes=10).rnn,
                      torch.nn.LSTM)
    tagger = SequenceTagger(params.binary_add.model, input_size=2)
    assert tagger.rnn.hidden_size == params.binary_add.model.hidden_size


def test_params_type_is_the_root():
    assert set(params_model().model_fields) == {"seed", "kth", "binary_add", "ocr"}


# --- checkpoints of the previous code ----------------------------------------------------------------------

def test_binary_add_checkpoint_without_its_loss_param_is_one_line_error(tmp_path):
    """Checkpoints from before train.loss existed are not read any more (the pipeline rebuilds its models)."""
    from seqlab.core.checkpoint import load_model
    from seqlab.core.errors import CheckpointError

    model_args = {"cell": "gru", "hidden_size": 4, "num_layers": 1}
    config = {"task": "binary_add", "variant": None, "seed": 0, "model": model_args, "train": {"lr": 0.01},
              "meta": {"max_trained_bits": 8}}
    path = tmp_path / "binary_add.pt"
    save_checkpoint(path, {"task": "binary_add", "variant": None, "config": config,
                           "model_state": SequenceTagger(RecurrentModelConfig(**model_args), input_size=2).state_dict(), "meta": {}})
    with pytest.raises(CheckpointError, match="unusable model config .*'loss'"):
        load_model(path, "binary_add")


def test_checkpoint_with_unknown_model_argument_is_one_line_error(tmp_path):
    from seqlab.core.checkpoint import load_model
    from seqlab.core.errors import CheckpointError

    config = {"task": "kth", "variant": None, "seed": 0, "model": {"cell": "lstm", "hidden_size": 4,
                                                                  "num_layers": 1, "dropout": 0.5},
              "train": {}, "meta": {"k": 3, "max_len": 10}}
    path = tmp_path / "kth.pt"
    save_checkpoint(path, {"task": "kth", "variant": None, "config": config, "model_state": {}, "meta": {}})
    with pytest.raises(CheckpointError, match="unusable model config .*dropout"):
        load_model(path, "kth")
