"""The package's folders are dependency boundaries: imports point down the layers, and no module imports
itself back through others.

Every import statement of every module under src/seqlab counts, wherever it is written: at module level,
inside a function (a lazy import hides a circle from Python, not from DVC, whose stages list folders), or
under `if TYPE_CHECKING`. The task registry's imports by name (seqlab.core.registry: "module:Class"
strings) are not import statements: that is how core names the tasks without depending on them.

LAYERS, lowest first, is the one definition of the order (docs/development.md "Layout in detail" draws it). A module may import
its own folder and the folders of lower layers; folders of one layer may not import each other. The task
families (tasks/sequence, tasks/ocr) are separate folders of one layer. Inside tasks/ocr, the base (charset,
the on-disk format, normalize, the params sections) sits under synth/ (stage-time data synthesis) and
recognizer/, which share a layer so that neither imports the other: the training, evaluation and export
stages then depend on no renderer, the rendering stages on no model. documents/ (ground truth readers,
the page line finder, hOCR: images in, no model) sits between the base and the recognizer, whose predict
reads pages with it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "seqlab"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),                               # config, checkpoints, the Task contract, the registry
    ("tasks.sequence", "tasks.ocr", "tracking"),  # each task family (ocr: its base); MLflow store and model
    ("tasks.ocr.documents",),                # pages, line finding, ground truth, hOCR: images in, no model
    ("tasks.ocr.synth", "tasks.ocr.recognizer"),  # OCR data synthesis and the recognizer: neither imports the other
    ("training", "evaluation", "export"),    # the train, evaluate and export stages
    ("bench",),                              # benchmarks of the pieces below
    ("cli",),                                # the command: imports each stage's folders lazily
)
RANK = {folder: rank for rank, folders in enumerate(LAYERS) for folder in folders}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def folder(module: str) -> str | None:
    """The layer unit of a module: its longest LAYERS folder prefix (None: the package root)."""
    rest = module.removeprefix("seqlab.")
    return max((f for f in RANK if rest == f or rest.startswith(f + ".")), key=len, default=None)


def imports(module: str) -> set[str]:
    """The seqlab modules `module`'s import statements name (packages stand for their __init__)."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *filter(None, [base])])
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base for alias in node.names]
        else:
            continue
        found.update(n for n in names if n in modules() and n != module)
    return found


def test_every_module_has_a_layer():
    homeless = [m for m, p in modules().items() if folder(m) is None and p.name != "__init__.py"]
    assert not homeless, f"modules outside every LAYERS folder (add the folder to LAYERS): {homeless}"


def test_package_inits_import_nothing():
    """An __init__ runs whenever its folder is imported: one that imports would tie the folder to others."""
    heavy = [m for m, p in modules().items() if p.name == "__init__.py" and imports(m)]
    assert not heavy, f"package __init__ modules with imports: {heavy}"


def test_imports_point_down_the_layers():
    upward = []
    for module in modules():
        own = folder(module)
        for target in imports(module):
            other = folder(target)
            if other is None or other == own:
                continue  # a package __init__ (imports nothing, see above) or the module's own folder
            if own is None or RANK[other] >= RANK[own]:
                upward.append(f"{module} -> {target} ({own} may not import {other})")
    assert not upward, "imports that point up or across the layers:\n" + "\n".join(sorted(upward))


def test_no_import_circle():
    graph = {m: imports(m) for m in modules()}
    cycles, state, stack = [], dict.fromkeys(graph, 0), []  # state: 0 new, 1 on the stack, 2 done

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif state[nxt] == 0:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node)
    assert not cycles, "import circles (lazy and TYPE_CHECKING imports count):\n" + "\n".join(cycles)



def test_the_walk_sees_lazy_and_type_checking_imports():
    """The checks above are only as good as `imports`: it must see imports inside functions and TYPE_CHECKING."""
    assert "seqlab.training.loop" in imports("seqlab.cli")  # inside cmd_train
    assert "seqlab.core.task" in imports("seqlab.core.registry")  # under TYPE_CHECKING
