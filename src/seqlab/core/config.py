"""params.yaml as typed configuration: the root `Params`, and loading.

    params = load_params("params.yaml")           # validated once, at start-up
    params.section_of("kth", KthConfig).data.k     # a stage reads its own section, typed (OcrConfig.of) ...
    params.section("ocr").run("crnn").model        # ... or the model/train pair of one training run
    load_params("params.yaml", "kth")              # seed and the kth section only (a stage's own)

The building blocks (strict base model, shared train/recurrent sections) live in seqlab.core.sections; each
task's section class lives with the task (seqlab.tasks.sequence.config, seqlab.tasks.ocr.config) and is
named in the task registry, which this module reads to assemble the root: the task sections import core,
core names them only by string (no import circle, no import up). Nothing here imports torch or trdg.

Every key is required, unknown keys are errors (with a "did you mean" hint for typos), and each broken
rule fails with one line that names the key as params.yaml spells it (`ParamsError`). Validation runs
before a stage writes anything, so a bad edit costs no output.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from pydantic import BaseModel, ValidationError, create_model
from pydantic_core import ErrorDetails

from seqlab.core import registry
from seqlab.core.errors import ParamsError
from seqlab.core.sections import NonNegativeInt, Section, TaskSection

DEFAULT_PARAMS = "params.yaml"
SectionT = TypeVar("SectionT", bound=Section)
TaskSectionT = TypeVar("TaskSectionT", bound=TaskSection)


class Params(Section):
    """The whole of params.yaml: `seed` and one section per registered task (seqlab.core.registry), each
    validated by the section class its task declares. The concrete model is built from the registry
    (params_model), so adding a task adds its section here without an edit."""

    seed: NonNegativeInt

    def section(self, task: str) -> TaskSection:
        """A task's params section (params.yaml's `<task>` key); `.run(variant)` is what a training run reads."""
        return cast(TaskSection, getattr(self, task))

    def section_of(self, task: str, kind: type[TaskSectionT]) -> TaskSectionT:
        """A task's params section as its own class, so that the type checker follows every key read from it
        (`params.section_of("ocr", OcrConfig).data.height`; core names no task's class, so `params.ocr` is
        not typed: the task sections are fields of the model params_model builds at run time)."""
        section = self.section(task)
        if not isinstance(section, kind):
            raise TypeError(f"params section {task!r} is a {type(section).__name__}, not {kind.__name__}")
        return section


@cache
def _model(tasks: tuple[str, ...], partial: bool) -> type[Params]:
    fields: dict[str, Any] = {name: (registry.config_class(name), ...) for name in tasks}
    model = create_model("Params", __base__=Params, **fields)
    if partial:  # one stage's sections; the validate stage (which every stage runs after) checks the rest
        model.model_config["extra"] = "ignore"
        model.model_rebuild(force=True)
    return model


def params_model(task: str | None = None) -> type[Params]:
    """The params.yaml model of every registered task, or only of `task` (other sections are ignored)."""
    if task is None:
        return _model(registry.task_names(), False)
    registry.entry(task)  # an unknown task is an error here, not a missing section
    return _model((task,), True)


def parse_params(raw: Any, task: str | None = None) -> Params:
    """Validate a parsed params document (YAML's dicts, lists and scalars) into typed sections: all of them,
    or `seed` and `task`'s section only."""
    model = params_model(task)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(describe(exc, model)) from None


def section_from_dict(kind: type[SectionT], raw: Mapping[str, Any]) -> SectionT:
    """A section from plain values written earlier (a checkpoint's copy of its model section), checked as
    params.yaml is; ValueError with one line naming the key when they are not one."""
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(describe(exc, kind)) from None


def load_params(path: str | Path = DEFAULT_PARAMS, task: str | None = None) -> Params:
    """Read and validate params.yaml (every section, or `seed` and `task`'s: a stage validates what it reads);
    any problem raises ParamsError with a one-line message."""
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
    return parse_params(raw, task)


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


def describe(exc: ValidationError, root: type[BaseModel] | None = None) -> str:
    """The first problem of a failed validation of `root` (default: all of params.yaml) as one line:
    "<dotted key> <rule> (got <value>)".

    An unknown key is reported first (a typo also makes its correct spelling "missing").
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    return _describe_one(errors[0], root or params_model())


def _describe_one(err: ErrorDetails, root: type[BaseModel]) -> str:
    key, index, parent = _locate(err["loc"], root)
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


def _locate(loc: tuple[int | str, ...], root: type[BaseModel]) -> tuple[str, str, type[BaseModel] | None]:
    """(dotted key, list index suffix, model holding the key) of an error location.

    Inside a value (a list or a union) pydantic adds indexes and union member names to the location:
    indexes become "[i]", member names are dropped.
    """
    keys: list[str] = []
    index = ""
    model: type[BaseModel] | None = root
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
