"""The layout shows the architecture (docs/architecture.md): imports run downwards, with no
cycle, no private name crosses a package boundary, and every module has one job's size."""

import ast
import pathlib
from collections import defaultdict

import pytest

REPO = pathlib.Path(__file__).parents[1]
PACKAGES = ("gridflow", "neural", "validation")
LAYER = {"gridflow": 0, "neural": 1, "validation": 2}
MAX_LINES = 600
"""Modules longer than this hold more than one job; numba kernel files (a name containing
'kernel') may be longer, since numba's cache tracks the file that defines a kernel."""


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


MODULES = _modules()


def _package_of(module: str) -> str:
    """The package a module belongs to: itself for a package's __init__, else its parent."""
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, top_level_only: bool):
    """(imported module, [names]) for each import of ``module`` of the project's packages."""
    tree = ast.parse(MODULES[module].read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    yield submodule, []
                else:
                    yield node.module, [alias.name]


def test_imports_run_downwards():
    upward = [
        f"{module} imports {target}"
        for module in MODULES
        for target, _ in _imports(module, top_level_only=False)
        if LAYER[target.split(".")[0]] > LAYER[module.split(".")[0]]
    ]
    assert not upward


def test_no_import_cycle():
    graph = defaultdict(set)
    for module in MODULES:
        for target, _ in _imports(module, top_level_only=False):
            if target in MODULES and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert not cycles


def test_no_private_name_crosses_a_package_boundary():
    """A private name of a module is used only in its own package (folder); a private module
    only inside the package that holds it (and its sub-packages)."""
    crossing = []
    for module in MODULES:
        for target, names in _imports(module, top_level_only=False):
            if target not in MODULES:
                continue
            home = _package_of(target)
            private_module = any(part.startswith("_") and part != "__init__"
                                 for part in target.split("."))  # fmt: skip
            if private_module and not (module == home or module.startswith(home + ".")):
                crossing.append(f"{module} imports the private module {target}")
            for name in names:
                if name.startswith("_") and _package_of(module) != home:
                    crossing.append(f"{module} imports {target}.{name}")
    assert not crossing


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_hold_one_job(module):
    path = MODULES[module]
    if "kernel" not in path.name:
        assert len(path.read_text().splitlines()) <= MAX_LINES
