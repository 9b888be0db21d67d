"""params.yaml: loading and validation, done once at start-up.

Every key is required (params.yaml is the complete contract of the pipeline), unknown keys are
errors (with a "did you mean" hint for typos), and each rule fails with one line that names the
key. Validation runs before a stage writes anything, so a bad edit costs no output.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seqlab.errors import ParamsError

DEFAULT_PARAMS = "params.yaml"


@dataclass(frozen=True)
class Field:
    """One leaf of the schema: its type, and optional bounds or choices."""

    kind: str  # int | float | bool | str | list[str] | list[int] | unions such as "str|list[str]"
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    choices: tuple[str, ...] | None = None

    def check(self, key: str, value: Any) -> Any:
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamsError(f"{key} must be an integer (got {value!r})")
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ParamsError(f"{key} must be a finite number (got {value!r})")
            value = float(value)
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise ParamsError(f"{key} must be true or false (got {value!r})")
        elif self.kind == "str":
            if not isinstance(value, str) or not value:
                raise ParamsError(f"{key} must be a non-empty string (got {value!r})")
        elif self.kind == "list[str]":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ParamsError(f"{key} must be a list of non-empty strings (got {value!r})")
            if len(set(value)) != len(value):
                raise ParamsError(f"{key} has duplicate entries")
        elif self.kind == "list[int]":
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                      for v in value):
                raise ParamsError(f"{key} must be a list of positive integers (got {value!r})")
        elif "|" in self.kind:  # a union such as "str|list[str]": accept the first kind that fits
            for kind in self.kind.split("|"):
                try:
                    return Field(kind).check(key, value)
                except ParamsError:
                    pass
            raise ParamsError(f"{key} must be {' or '.join(self.kind.split('|'))} (got {value!r})")
        if self.choices is not None and value not in self.choices:
            raise ParamsError(f"{key} must be one of {', '.join(self.choices)} (got {value!r})")
        if self.min is not None:
            if self.exclusive_min and not value > self.min:
                raise ParamsError(f"{key} must be > {_fmt(self.min)} (got {value!r})")
            if not self.exclusive_min and value < self.min:
                raise ParamsError(f"{key} must be >= {_fmt(self.min)} (got {value!r})")
        if self.max is not None and value > self.max:
            raise ParamsError(f"{key} must be <= {_fmt(self.max)} (got {value!r})")
        return value


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def Int(min: int | None = None, max: int | None = None) -> Field:  # noqa: N802 - reads like a type
    return Field("int", min=min, max=max)


def Positive() -> Field:  # noqa: N802
    return Field("int", min=1)


def Float(min: float | None = None, max: float | None = None, exclusive_min: bool = False) -> Field:  # noqa: N802
    return Field("float", min=min, max=max, exclusive_min=exclusive_min)


def Choice(*choices: str) -> Field:  # noqa: N802
    return Field("str", choices=choices)


CELLS = ("lstm", "gru", "rnn")

TRAIN = {
    "epochs": Positive(),
    "batch_size": Positive(),
    "lr": Float(min=0, exclusive_min=True),
    "weight_decay": Float(min=0),
    "grad_clip": Float(min=0),  # 0 disables clipping
    "scheduler": Choice("constant", "cosine", "onecycle"),
    "patience": Positive(),  # epochs without validation improvement before stopping
    "device": Choice("auto", "cpu", "cuda"),
}

RECURRENT_MODEL = {"cell": Choice(*CELLS), "hidden_size": Positive(), "num_layers": Positive()}

Rule = Callable[[Mapping[str, Any]], None]


def _rule(cond: bool, message: str) -> None:
    if not cond:
        raise ParamsError(message)


def _kth_rules(p: Mapping[str, Any]) -> None:
    d = p["kth"]["data"]
    _rule(d["k"] <= d["min_len"], f"kth.data.k must be <= kth.data.min_len, so every sequence has a k-th digit "
          f"(got k={d['k']}, min_len={d['min_len']})")
    _rule(d["min_len"] <= d["max_len"], f"kth.data.min_len must be <= kth.data.max_len "
          f"(got {d['min_len']} > {d['max_len']})")
    _rule(d["generalization_max_len"] > d["max_len"], "kth.data.generalization_max_len must be > kth.data.max_len "
          f"(got {d['generalization_max_len']} <= {d['max_len']})")


def _binary_add_rules(p: Mapping[str, Any]) -> None:
    d = p["binary_add"]["data"]
    _rule(d["min_bits"] <= d["max_bits"], f"binary_add.data.min_bits must be <= binary_add.data.max_bits "
          f"(got {d['min_bits']} > {d['max_bits']})")
    _rule(d["generalization_bits"] > d["max_bits"], "binary_add.data.generalization_bits must be > "
          f"binary_add.data.max_bits (got {d['generalization_bits']} <= {d['max_bits']})")


SCHEMA: dict[str, Any] = {
    "seed": Int(min=0),
    "kth": {
        "data": {
            "k": Positive(),
            "min_len": Positive(),
            "max_len": Positive(),
            "generalization_max_len": Positive(),
            "n_train": Positive(),
            "n_val": Positive(),
            "n_test": Positive(),
            "n_generalization": Positive(),
        },
        "model": RECURRENT_MODEL,
        "train": TRAIN,
    },
    "binary_add": {
        "data": {
            "min_bits": Positive(),
            "max_bits": Positive(),
            "generalization_bits": Positive(),
            "long_run_ratio": Float(min=0, max=1),
            "n_train": Positive(),
            "n_val": Positive(),
            "n_test": Positive(),
            "n_generalization": Positive(),
        },
        "model": RECURRENT_MODEL,
        "train": {**TRAIN, "loss": Choice("bce", "mse")},
    },
}

RULES: list[Rule] = [_kth_rules, _binary_add_rules]


def register_section(name: str, schema: dict[str, Any], rules: list[Rule] | None = None) -> None:
    """Let a task module add its own top-level section (keeps each task's contract next to its code)."""
    SCHEMA[name] = schema
    RULES.extend(rules or [])


def _validate_tree(schema: Mapping[str, Any], value: Any, prefix: str) -> dict[str, Any]:
    where = prefix or "params.yaml"
    if not isinstance(value, Mapping):
        raise ParamsError(f"{where} must be a mapping of keys (got {type(value).__name__})")
    out: dict[str, Any] = {}
    for key in value:
        if key not in schema:
            hint = difflib.get_close_matches(str(key), [str(k) for k in schema], n=1)
            more = f" (did you mean {_join(prefix, hint[0])}?)" if hint else f" (allowed: {', '.join(schema)})"
            raise ParamsError(f"{_join(prefix, key)} is not a known key{more}")
    for key, sub in schema.items():
        full = _join(prefix, key)
        if key not in value:
            raise ParamsError(f"{full} is missing")
        out[key] = sub.check(full, value[key]) if isinstance(sub, Field) else _validate_tree(sub, value[key], full)
    return out


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def validate(raw: Any) -> dict[str, Any]:
    """Validate a parsed params document against the schema and cross-key rules."""
    _load_task_sections()
    params = _validate_tree(SCHEMA, raw, "")
    for rule in RULES:
        rule(params)
    return params


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read and validate params.yaml; any problem raises ParamsError with a one-line message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path} not found (run from the repository root or pass --params)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        raise ParamsError(f"{path} is empty")
    return validate(raw)


def _load_task_sections() -> None:
    # Importing the OCR task registers its section; kept lazy so kth/binary_add never import trdg.
    if "ocr" not in SCHEMA:
        import seqlab.tasks.ocr.params  # noqa: F401


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become comma-joined strings (MLflow params are strings)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        full = _join(prefix, key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, full))
        elif isinstance(value, list):
            flat[full] = ",".join(map(str, value))
        else:
            flat[full] = value
    return flat
