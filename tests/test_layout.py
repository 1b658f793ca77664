"""The package is laid out by layer and its imports only point down (issue 11)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxprecond"
#: Each layer and the layers it may import (besides itself).
LAYERS = {
    "base": set(),  # checks, linalg
    "optim": {"base"},
    "tasks": {"base"},
    "engine": {"base"},
    "training": {"base", "optim", "tasks", "engine"},  # the student and its optimizer
    "experiments": {"base", "optim", "tasks", "engine", "training"},
    "fidelity": {"base", "optim", "tasks", "engine", "training", "experiments"},
    # cli, report, claims, reproduce, ...
    "top": {"base", "optim", "tasks", "engine", "training", "experiments", "fidelity"},
}
EXPERIMENTS = {"noise", "transfer", "ood", "rotated"}


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    if parts and parts[0] in LAYERS:
        return parts[0]
    return "base" if parts and parts[0] in ("checks", "linalg") else "top"


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        if name != "jaxprecond":  # the package's public names gather every layer
            yield name, path


def imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            yield from (n for n in names if n.startswith("jaxprecond"))
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("jaxprecond"))


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=[n for n, _ in modules()])
def test_imports_point_down(name, path):
    own = layer(name)
    for target in imports(path):
        if target == "jaxprecond" or target.split(".")[1:2] == [""]:
            continue
        assert layer(target) in LAYERS[own] | {own}, f"{name} ({own}) imports {target}"
        if own == "experiments" and name.split(".")[-1] in EXPERIMENTS:
            other = target.split(".")[2] if target.count(".") >= 2 else ""
            assert other not in EXPERIMENTS - {name.split(".")[-1]}, f"{name} imports {target}"


def test_the_experiments_folder_holds_experiments_only():
    """Code that several experiments share lives in a lower layer, not beside them."""
    found = {p.stem for p in (PACKAGE / "experiments").glob("*.py")} - {"__init__"}
    assert found == EXPERIMENTS


def test_every_experiment_module_holds_its_science_only():
    """Each experiment is one definition of at most 300 lines, docstrings included."""
    for experiment in EXPERIMENTS:
        lines = (PACKAGE / "experiments" / f"{experiment}.py").read_text().splitlines()
        assert len(lines) <= 300, f"{experiment}.py has {len(lines)} lines"


def test_importing_the_package_leaves_matplotlib_alone():
    code = """
import sys, matplotlib
before = dict.__getitem__(matplotlib.rcParams, "backend")
import jaxprecond, jaxprecond.cli, jaxprecond.report, jaxprecond.claims, jaxprecond.reproduce
from jaxprecond.experiments import NAMES, find
for name in NAMES:
    find(name)
assert dict.__getitem__(matplotlib.rcParams, "backend") == before, "backend changed"
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
