"""dvc.yaml lists every piece of seqlab code each stage runs, and every third-party import is declared.

DVC reruns a stage only when one of its deps changes, so a module a stage imports but does not list
is an edit DVC never sees: the old model stays in place as if it were current. For each stage
(as DVC itself resolves dvc.yaml: `vars` filled in, `foreach` expanded) the command line is parsed with seqlab's own argument parser to find the
subcommand's handler; from there the import graph is walked statically, without running anything
(no data, no torch):

- seqlab/cli.py: its module-level imports, plus the imports inside the handler and inside the cli
  helpers it calls (the other subcommands' imports do not count);
- every other module reached: all of its imports, function-level ones included (over-approximation),
  plus the package `__init__` modules Python runs on the way there;
- the task registry imports by name (`importlib.import_module`) what its loaders name: `config_class` the
  params section module, `task_class` the Task module, `data_generator` the data generator's module.
  A loader counts when the handler or a module reached refers to it (load_params: config_class); then a
  stage with a task (`seqlab train kth`, or an OCR command, whose parser default is task=ocr) counts its
  own task's entry, none of the other tasks'; a stage with no task (validate) every task's entry. So
  `seqlab generate ocr` counts the renderer and not the recognizer's Task module.

A dep may be a module file or a directory that holds it (dvc.yaml lists folders: src/seqlab/core, ...):
a folder dep is a superset, it never misses a module. Package `__init__` modules with nothing but a
docstring and constants need no dep.

    .venv/bin/python tests/unit/test_stage_dependencies.py    # print each stage's modules
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import inspect
import io
import re
import shlex
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "seqlab"
sys.path.insert(0, str(ROOT / "scripts"))  # the stages as DVC resolves them: timed_repro's, written once

from timed_repro import expanded_stages  # noqa: E402

# --- dvc.yaml ----------------------------------------------------------------------------------------

def _dep_path(dep: object) -> str:
    return next(iter(dep)) if isinstance(dep, dict) else str(dep)


@cache
def stages() -> dict[str, dict]:
    """Stage name (`train@kth` for foreach stages) -> its definition."""
    return dict(expanded_stages(ROOT / "dvc.yaml"))


# --- the import graph ------------------------------------------------------------------------------

def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _absolute(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module or ""
    package = module if module_file(module).name == "__init__.py" else module.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def imported_names(tree: ast.AST, module: str) -> set[str]:
    """Modules named by the import statements anywhere in `tree` (`from a import b`: a.b if a module, else a)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}"))
    return names


REGISTRY_LOADERS = {"config_class": "config", "task_class": "task", "data_generator": "generator",
                    "reader_class": "reader"}


def loaders_used(tree: ast.AST) -> set[str]:
    """The registry loaders `tree` refers to (a call or a reference), as TaskEntry field names."""
    names = {getattr(node, "id", None) or getattr(node, "attr", None)
             for node in ast.walk(tree) if isinstance(node, (ast.Name, ast.Attribute))}
    return {REGISTRY_LOADERS[n] for n in names & REGISTRY_LOADERS.keys()}


def _registered_modules(task: str | None, fields: set[str]) -> set[str]:
    """The modules the task registry imports by name for a stage of `task` that uses the loaders of
    `fields` (see the module docstring)."""
    from seqlab.core.registry import entries

    refs = [getattr(e, field) for e in entries() if task in (None, e.name) for field in sorted(fields)]
    return {ref.partition(":")[0] for ref in refs if ref is not None}  # reader: None means the task's own class


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(module_file(name).read_text(), filename=str(module_file(name)))


def closure(roots: set[str], task: str | None, entry: str, loaders: set[str] = frozenset()) -> set[str]:
    """Every seqlab module reachable from `roots` (see the module docstring for the rules).

    `entry` (the cli) is in the result, but its imports and registry loaders are the caller's to choose:
    they are in `roots` and `loaders`.
    """
    seen: set[str] = {entry}
    todo = [r for r in roots if r.split(".")[0] == PACKAGE]
    fields = set(loaders)
    while todo:
        while todo:
            name = todo.pop()
            if name in seen or module_file(name) is None:
                continue
            seen.add(name)
            parts = name.split(".")
            todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
            tree = _tree(name)
            todo += [n for n in imported_names(tree, name) if n.split(".")[0] == PACKAGE]
            fields |= loaders_used(tree)
        todo = sorted(_registered_modules(task, fields) - seen)  # what they load may use other loaders
    return seen


def _function_code(func: object, module_globals: dict, done: set[str]) -> tuple[set[str], set[str]]:
    """Imports and registry loaders inside a cli function and inside the module's functions it calls,
    transitively."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    names, loaders = imported_names(tree, func.__module__), loaders_used(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in done:
            callee = module_globals.get(node.func.id)
            if inspect.isfunction(callee) and callee.__module__ == func.__module__:
                done.add(node.func.id)
                more_names, more_loaders = _function_code(callee, module_globals, done)
                names, loaders = names | more_names, loaders | more_loaders
    return names, loaders


@dataclass(frozen=True)
class StageCode:
    modules: frozenset[str]   # every seqlab module the stage's command can import
    required: frozenset[str]  # their files (repo-relative), less trivial package __init__ files


def _is_trivial_init(name: str) -> bool:
    if module_file(name).name != "__init__.py":
        return False
    for stmt in _tree(name).body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(stmt.value, ast.Constant):
            continue
        return False
    return True


def _rel(name: str) -> str:
    return module_file(name).relative_to(ROOT).as_posix()


@cache
def stage_code(stage_name: str) -> StageCode:
    import seqlab.cli as cli

    argv = shlex.split(stages()[stage_name]["cmd"])
    assert argv[0] == PACKAGE, f"{stage_name}: not a seqlab command: {argv}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args, _ = cli.build_parser().parse_known_args(argv[1:])
    except SystemExit:
        pytest.fail(f"dvc.yaml stage {stage_name}: `{shlex.join(argv)}` is not a valid seqlab command: "
                    f"{stderr.getvalue().strip().splitlines()[-1]}")
    top_level = ast.Module(body=[s for s in _tree(cli.__name__).body
                                 if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))],
                           type_ignores=[])
    roots = {PACKAGE} | imported_names(top_level, cli.__name__)
    handler_imports, loaders = _function_code(args.func, vars(cli), {args.func.__name__})
    modules = closure(roots | handler_imports, getattr(args, "task", None), cli.__name__, loaders)
    required = {_rel(m) for m in modules if not _is_trivial_init(m)}
    return StageCode(frozenset(modules), frozenset(required))


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


STAGES = sorted(stages())


@pytest.mark.parametrize("stage", STAGES)
def test_deps_cover_every_module_the_stage_imports(stage):
    deps = [_dep_path(d) for d in stages()[stage].get("deps", [])]
    missing = sorted(p for p in stage_code(stage).required if not _covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage} runs these modules but does not list them as deps: {missing}"


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_exist_and_are_used(stage):
    """A src/ dep that is gone fails `dvc repro`; one the stage never imports reruns it for nothing."""
    files = stage_code(stage).required | {_rel(m) for m in stage_code(stage).modules}
    for dep in (_dep_path(d) for d in stages()[stage].get("deps", [])):
        if not dep.startswith("src/"):
            continue
        assert (ROOT / dep).exists(), f"{stage}: dep {dep} does not exist"
        assert any(_covered(f, [dep]) for f in files), f"{stage}: dep {dep} holds no module the stage imports"


def test_walk_follows_function_level_imports_and_only_the_stages_own_task():
    """The walk itself: a handler's lazy imports count, other handlers' and other tasks' do not."""
    validate, train_kth = stage_code("validate").modules, stage_code("train@kth").modules
    assert "seqlab.training.loop" in train_kth and "seqlab.training.loop" not in validate
    assert "seqlab.tasks.sequence.kth" in train_kth and "seqlab.tasks.sequence.binary_add" not in train_kth
    assert "seqlab.tasks.ocr.config" in validate and "seqlab.tasks.ocr.config" not in train_kth
    ocr_tasks = {m for m in stage_code("ocr-evaluate@crnn").modules if m.startswith("seqlab.tasks.ocr.")}
    assert ocr_tasks and "seqlab.tasks.sequence.kth" not in stage_code("ocr-evaluate@crnn").modules


def test_champion_rule_reruns_only_evaluate_stages():
    """The champion rule (evaluation/model_registry.py) is no train stage's dep: editing it retrains nothing but
    ocr-finetune, which scores and registers its own model (a CPU minute on the shipped sample)."""
    rule = "src/seqlab/evaluation/model_registry.py"
    reruns = sorted(name for name in STAGES
                    if _covered(rule, [_dep_path(d) for d in stages()[name].get("deps", [])]))
    assert reruns and all(name.split("@")[0] in ("evaluate", "ocr-evaluate", "ocr-finetune") for name in reruns), \
        reruns


def reruns(edited: str) -> set[str]:
    """The stages `dvc repro` reruns after an edit of `edited`: those listing it, then, when their outputs
    change, those listing one of those outputs, transitively."""
    def deps(name: str) -> list[str]:
        return [_dep_path(d) for d in stages()[name].get("deps", [])]

    found = {name for name in STAGES if _covered(edited, deps(name))}
    while True:
        outs = [_dep_path(o) for name in found for o in stages()[name].get("outs", [])
                if _dep_path(o) != "data/params.ok"]  # validate's marker: constant bytes, its rerun reruns nothing
        more = {name for name in STAGES if any(_covered(o, deps(name)) or o == d for o in outs for d in deps(name))}
        if more <= found:
            return found
        found |= more


def test_editing_the_reserved_renderer_reruns_the_reserved_splits_and_the_evaluations_only():
    """reserved_render.py draws evaluation data only: no model is retrained, no training split re-rendered."""
    assert reruns("src/seqlab/tasks/ocr/synth/reserved_render.py") == {
        "ocr-reserved", "ocr-tesseract", "ocr-rapidocr", "ocr-evaluate@bilstm", "ocr-evaluate@crnn"}


def test_editing_the_models_reruns_training_export_and_evaluation_not_the_rendering():
    found = reruns("src/seqlab/tasks/ocr/recognizer/models.py")
    assert {"ocr-train@crnn", "ocr-train@bilstm", "ocr-export@crnn", "ocr-evaluate@crnn"} <= found
    assert not found & {"ocr-fonts", "ocr-corpus", "ocr-generate", "ocr-reserved", "ocr-tesseract", "ocr-rapidocr"}, \
        sorted(found)


def test_reference_engines_rerun_on_their_own_code_not_each_others():
    """Each reference engine's stage reruns when its module or the shared scoring changes, not the other's."""
    recognizer = "src/seqlab/tasks/ocr/recognizer"
    assert {"ocr-tesseract", "ocr-rapidocr"} <= reruns(f"{recognizer}/reference_engine.py")
    assert "ocr-tesseract" not in reruns(f"{recognizer}/rapidocr.py")
    assert "ocr-rapidocr" in reruns(f"{recognizer}/rapidocr.py")
    assert "ocr-rapidocr" not in reruns(f"{recognizer}/tesseract.py")


def test_python_caches_inside_code_deps_are_ignored_by_dvc():
    """A directory dep hashes every file in it: __pycache__/*.pyc (rewritten by any run) would rerun the stage."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        pyc = ROOT / "src" / PACKAGE / "__pycache__" / "cli.cpython-311.pyc"
        assert repo.dvcignore.is_ignored_file(str(pyc))


# --- declared third-party dependencies --------------------------------------------------------------

def _top_level_imports(paths: list[Path]) -> dict[str, str]:
    """Top-level name of each absolute import -> one file importing it (stdlib and local names dropped)."""
    found: dict[str, str] = {}
    local = {p.stem for p in paths} | {p.parent.name for p in paths if (p.parent / "__init__.py").is_file()} | {PACKAGE}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and top != "__future__":
                    found.setdefault(top, path.relative_to(ROOT).as_posix())
    return found


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _requirement_name(spec: str) -> str:
    return _normalize(re.split(r"[<>=!~\[;\s]", spec, maxsplit=1)[0])


@cache
def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _undeclared(paths: list[Path], declared: set[str]) -> list[str]:
    owners = importlib.metadata.packages_distributions()
    problems = []
    for top, where in sorted(_top_level_imports(paths).items()):
        dists = {_normalize(d) for d in owners.get(top, [])}
        if not dists:
            problems.append(f"{top} (imported in {where}) is not installed")
        elif not dists & declared:
            problems.append(f"{top} (imported in {where}) comes from {sorted(dists)}, which pyproject does not declare")
    return problems


def test_package_imports_are_declared_dependencies():
    project = _pyproject()
    declared = {_requirement_name(s) for s in project["dependencies"]}
    declared |= {_requirement_name(s) for extra in ("tesseract", "rapidocr")
                 for s in project["optional-dependencies"].get(extra, [])}
    problems = _undeclared(sorted(SRC.rglob("*.py")), declared)
    assert not problems, "declare in pyproject.toml dependencies (and pin in requirements.txt):\n" + "\n".join(problems)


def test_tool_test_and_benchmark_imports_are_declared():
    project = _pyproject()
    declared = {_requirement_name(s) for s in project["dependencies"]}
    declared |= {_requirement_name(s) for specs in project["optional-dependencies"].values() for s in specs}
    paths = [p for d in ("tools", "tests", "benchmarks", "scripts") for p in sorted((ROOT / d).rglob("*.py"))]
    problems = _undeclared(paths, declared)
    assert not problems, "declare in pyproject.toml (the dev extra) and pin in requirements.txt:\n" + "\n".join(problems)


def test_every_declared_dependency_is_pinned_in_requirements():
    project = _pyproject()
    specs = [*project["dependencies"], *(s for v in project["optional-dependencies"].values() for s in v)]
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins[_requirement_name(line)] = line
    unpinned = [s for s in specs if "==" not in pins.get(_requirement_name(s), "")]
    assert not unpinned, f"requirements.txt has no exact pin for {unpinned}"



def _floor(spec: str) -> tuple[int, ...]:
    """The lowest version a Requires-Python spec admits, from its >= clauses (">=3.11,<4" -> (3, 11))."""
    floors = [tuple(int(x) for x in m.group(1).split(".")) for m in re.finditer(r">=\s*([\d.]+)", spec or "")]
    return max(floors, default=(0,))


def test_requires_python_is_what_the_pins_need():
    """pyproject's requires-python must not promise a Python the pinned packages refuse to install on."""
    ours = _floor(_pyproject()["requires-python"])
    pins = [line.split("#", 1)[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    needs = {}
    for pin in filter(None, pins):
        name = pin.split("==")[0]
        try:
            needs[name] = _floor(importlib.metadata.metadata(name).get("Requires-Python"))
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional pin that is not installed here
    too_new = {name: ".".join(map(str, v)) for name, v in needs.items() if v > ours}
    assert not too_new, f"requires-python admits {'.'.join(map(str, ours))}, but these pins need more: {too_new}"


if __name__ == "__main__":
    for name in STAGES:
        code = stage_code(name)
        print(f"{name}: {', '.join(sorted(m.removeprefix(PACKAGE + '.') for m in code.modules))}")
