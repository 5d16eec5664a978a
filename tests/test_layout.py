"""The package's structure holds: imports point down the layers, and a lower layer imports on
its own (a cycle shows up only when a module is imported first, so each is tried that way)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ncflab"

# What each layer may not import at run time (``if TYPE_CHECKING:`` blocks do not count).
FORBIDDEN = {
    "data": ("ncflab.models", "ncflab.training", "ncflab.experiments", "ncflab.cli", "ncflab.runs"),
    "training": ("ncflab.models", "ncflab.experiments", "ncflab.cli", "ncflab.runs"),
    "models": ("ncflab.experiments", "ncflab.cli", "ncflab.runs"),
    "evaluation": ("ncflab.experiments", "ncflab.cli", "ncflab.runs"),
    "experiments": ("ncflab.serving", "ncflab.cli"),
    "serving": ("ncflab.cli",),
}


def _runtime_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    names = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_point_down(layer: str) -> None:
    bad = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in sorted((SRC / layer).glob("*.py"))
        for name in _runtime_imports(path)
        if name.startswith(FORBIDDEN[layer])
    ]
    assert not bad, bad


@pytest.mark.parametrize(
    "module",
    [
        "ncflab.training.loop",
        "ncflab.training.driver",
        "ncflab.runs",
        "ncflab.data.splits",
        "ncflab.cli",
    ],
)
def test_a_lower_module_imports_first(module: str) -> None:
    res = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_import_ncflab_is_light() -> None:
    code = "import sys, ncflab; print('torch' in sys.modules, ncflab.__version__)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.split()[0] == "False", res.stdout + res.stderr
