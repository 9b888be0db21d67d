
import pytest
import yaml
from reliability_support import DELETE, edited

from seqlab.errors import ParamsError
from seqlab.params import flatten, load_params, validate


def test_repo_params_are_valid(raw_params):
    params = validate(raw_params)
    assert params["kth"]["data"]["k"] == raw_params["kth"]["data"]["k"]
    assert isinstance(params["kth"]["train"]["lr"], float)




@pytest.mark.parametrize("key, value, message", [
    ("kth.data.k", 5, "kth.data.k must be <= kth.data.min_len"),
    ("kth.data.k", 0, "kth.data.k must be >= 1"),
    ("kth.data.k", "3", "kth.data.k must be an integer"),
    ("kth.data.min_len", 30, "kth.data.min_len must be <= kth.data.max_len"),
    ("kth.data.n_train", -5, "kth.data.n_train must be >= 1"),
    ("kth.data.generalization_max_len", 10, "kth.data.generalization_max_len must be > kth.data.max_len"),
    ("kth.model.cell", "transformer", "kth.model.cell must be one of lstm, gru, rnn"),
    ("kth.model.hidden_size", 0, "kth.model.hidden_size must be >= 1"),
    ("kth.train.lr", 0, "kth.train.lr must be > 0"),
    ("kth.train.lr", True, "kth.train.lr must be a finite number"),
    ("kth.train.epochs", 2.5, "kth.train.epochs must be an integer"),
    ("kth.train.scheduler", "step", "kth.train.scheduler must be one of"),
    ("kth.train.batch_sise", 4, "kth.train.batch_sise is not a known key (did you mean kth.train.batch_size?)"),
    ("kth.train.batch_size", DELETE, "kth.train.batch_size is missing"),
    ("binary_add.data.min_bits", 20, "binary_add.data.min_bits must be <= binary_add.data.max_bits"),
    ("binary_add.train.loss", "hinge", "binary_add.train.loss must be one of bce, mse"),
    ("binary_add.data.generalization_bits", 8, "binary_add.data.generalization_bits must be > binary_add.data.max_bits"),
    ("binary_add.model", DELETE, "binary_add.model is missing"),
    ("seed", -1, "seed must be >= 0"),
    ("kth.data", [1, 2], "kth.data must be a mapping"),
])
def test_invalid_params_name_key_and_rule(raw_params, key, value, message):
    with pytest.raises(ParamsError) as err:
        validate(edited(raw_params, key, value))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_top_level_section(raw_params):
    raw_params["kht"] = {}
    with pytest.raises(ParamsError, match="kht is not a known key"):
        validate(raw_params)


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
    assert load_params(path)["seed"] == raw_params["seed"]
