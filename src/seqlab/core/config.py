"""params.yaml as typed configuration: the kth and binary_add sections, the root `Params`, and loading.

    params = load_params("params.yaml")           # validated once, at start-up
    params.kth.data.k                              # a stage reads its own section ...
    params.run_section("ocr", "crnn").model        # ... or the model/train pair of one training run

The building blocks (strict base model, shared train/recurrent sections) live in seqlab.sections and
the OCR section in seqlab.tasks.ocr.config; this module assembles the root from both, so neither of
them imports it (no import circle). Nothing here imports torch or trdg.

Every key is required, unknown keys are errors (with a "did you mean" hint for typos), and each broken
rule fails with one line that names the key as params.yaml spells it (`ParamsError`). Validation runs
before a stage writes anything, so a bad edit costs no output.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError, model_validator
from pydantic_core import ErrorDetails

from seqlab.errors import ParamsError
from seqlab.sections import (
    NonNegativeInt,
    PositiveInt,
    Ratio,
    RecurrentModelConfig,
    RunSection,
    Section,
    TrainConfig,
    rule,
)
from seqlab.tasks.ocr.config import OcrConfig

DEFAULT_PARAMS = "params.yaml"


class SplitSizes(Section):
    """Sample counts of the four splits every sequence task writes."""

    n_train: PositiveInt
    n_val: PositiveInt
    n_test: PositiveInt
    n_generalization: PositiveInt


class KthDataConfig(SplitSizes):
    k: PositiveInt  # 1-based position of the digit to output
    min_len: PositiveInt
    max_len: PositiveInt
    generalization_max_len: PositiveInt  # generalization split: lengths max_len+1 .. this

    @model_validator(mode="after")
    def _ranges(self) -> KthDataConfig:
        rule(self.k <= self.min_len, "`k` must be <= `min_len`, so every sequence has a k-th digit "
             f"(got k={self.k}, min_len={self.min_len})")
        rule(self.min_len <= self.max_len, f"`min_len` must be <= `max_len` (got {self.min_len} > {self.max_len})")
        rule(self.generalization_max_len > self.max_len, "`generalization_max_len` must be > `max_len` "
             f"(got {self.generalization_max_len} <= {self.max_len})")
        return self


class KthConfig(Section):
    data: KthDataConfig
    model: RecurrentModelConfig
    train: TrainConfig


class BinaryAddDataConfig(SplitSizes):
    min_bits: PositiveInt
    max_bits: PositiveInt
    generalization_bits: PositiveInt  # generalization split: operands of max_bits+1 .. this many bits
    long_run_ratio: Ratio  # share of training pairs with one long run of same-kind bit positions

    @model_validator(mode="after")
    def _ranges(self) -> BinaryAddDataConfig:
        rule(self.min_bits <= self.max_bits, f"`min_bits` must be <= `max_bits` (got {self.min_bits} > {self.max_bits})")
        rule(self.generalization_bits > self.max_bits, "`generalization_bits` must be > `max_bits` "
             f"(got {self.generalization_bits} <= {self.max_bits})")
        return self


class BinaryAddTrainConfig(TrainConfig):
    loss: Literal["bce", "mse"]  # mse: the seed's squared error of the sigmoid output


class BinaryAddConfig(Section):
    data: BinaryAddDataConfig
    model: RecurrentModelConfig
    train: BinaryAddTrainConfig


class Params(Section):
    """The whole of params.yaml."""

    seed: NonNegativeInt
    kth: KthConfig
    binary_add: BinaryAddConfig
    ocr: OcrConfig

    def run_section(self, task: str, variant: str | None = None) -> RunSection:
        """The model/train pair a training run of `task` (and OCR `variant`) reads."""
        if task == "kth":
            return self.kth
        if task == "binary_add":
            return self.binary_add
        if task == "ocr" and variant is not None:
            return self.ocr.run(variant)
        raise ValueError(f"no training section for task {task!r}, variant {variant!r}")


def parse_params(raw: Any) -> Params:
    """Validate a parsed params document (YAML's dicts, lists and scalars) into typed sections."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(describe(exc)) from None


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
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
    return parse_params(raw)


# --- pydantic's errors as one line naming the params.yaml key ------------------------------------------------

# pydantic error type -> the rule, worded to follow the key; {name} fields come from the error's context.
MESSAGES = {
    "int_type": "must be an integer",
    "float_type": "must be a finite number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a non-empty string",
    "string_too_short": "must be a non-empty string",
    "list_type": "must be a list",
    "too_short": "must have {min_length} or more entries",
    "too_long": "must have {max_length} or fewer entries",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
}


def describe(exc: ValidationError) -> str:
    """The first problem of a failed validation as one line: "<dotted key> <rule> (got <value>)".

    An unknown key is reported first (a typo also makes its correct spelling "missing").
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    return _describe_one(errors[0])


def _describe_one(err: ErrorDetails) -> str:
    key, index, parent = _locate(err["loc"])
    where = key + index or "params.yaml"
    kind, value = err["type"], err["input"]
    if kind == "extra_forbidden":
        siblings = list(parent.model_fields) if parent else []
        *prefix, name = key.split(".")
        hint = difflib.get_close_matches(name, siblings, n=1)
        more = f"did you mean {'.'.join([*prefix, hint[0]])}?" if hint else f"allowed: {', '.join(siblings)}"
        return f"{key} is not a known key ({more})"
    if kind == "rule":  # a section's own rule: its backticked keys are relative to the section
        message = err["msg"]
        if "`" not in message:
            return f"{where} {message}"
        return re.sub(r"`([\w.]+)`", lambda m: f"{key}.{m[1]}" if key else m[1], message)
    if kind == "missing":
        return f"{where} is missing"
    if kind == "model_type":
        return f"{where} must be a mapping of keys (got {type(value).__name__})"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
        wanted = f"one of {', '.join(choices)}" if len(choices) > 1 else repr(choices[0]) if choices else "valid"
        return f"{where} must be {wanted} (got {value!r})"
    if kind in MESSAGES:
        ctx = {k: _number(v) for k, v in err.get("ctx", {}).items()}
        return f"{where} {MESSAGES[kind].format(**ctx)} (got {value!r})"
    return f"{where} {err['msg'][:1].lower()}{err['msg'][1:]} (got {value!r})"  # a custom union message


def _locate(loc: tuple[int | str, ...]) -> tuple[str, str, type[BaseModel] | None]:
    """(dotted key, list index suffix, model holding the key) of an error location.

    Inside a value (a list or a union) pydantic adds indexes and union member names to the location:
    indexes become "[i]", member names are dropped.
    """
    keys: list[str] = []
    index = ""
    model: type[BaseModel] | None = Params
    parent: type[BaseModel] | None = None
    for part in loc:
        if model is None:
            index += f"[{part}]" if isinstance(part, int) else ""
            continue
        keys.append(str(part))
        parent = model
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return ".".join(keys), index, parent


def _number(x: Any) -> Any:
    return int(x) if isinstance(x, float) and x.is_integer() else x
