"""Lower layers never import higher ones.

Order: net -> model -> input -> logic -> actuation -> tuning -> loop -> controller -> cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "operator" / "gc_tuner"
ORDER = ["net", "model", "input", "logic", "actuation", "tuning", "loop", "controller", "cli"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "gc_tuner":  # `from gc_tuner import controller` names a layer too
                found.update(f"gc_tuner.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative imports hide the layer; use gc_tuner.<layer>")
    return {m for m in found if m == "gc_tuner" or m.startswith("gc_tuner.")}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


@pytest.mark.parametrize("layer", ORDER)
def test_layer_imports_only_lower_layers(layer: str) -> None:
    rank = ORDER.index(layer)
    bad = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for mod in _imports(path):
            other = _layer_of(mod)
            if other is not None and ORDER.index(other) > rank:
                bad.append(f"{path.relative_to(PKG)} imports {mod}")
    assert not bad, "layer violation:\n" + "\n".join(bad)


def test_checker_detects_a_violation(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text(
        "from gc_tuner.controller import handlers\nimport gc_tuner.logic.fit\nfrom gc_tuner import cli\n"
    )
    mods = _imports(f)
    assert {_layer_of(m) for m in mods} == {"controller", "logic", "cli", None}
