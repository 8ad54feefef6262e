"""The package's layers: subpackages talk through each other's `__init__`, never through private modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "bridge"
LAYERS = ("tools", "runtime", "journal", "fleet", "agents", "telemetry", "mcp", "cli", "testing")
ALLOWED = {
    # who may import whom (besides the shared `bridge._errors`)
    "tools": set(),
    "journal": set(),
    "fleet": {"journal"},
    "runtime": {"tools", "journal", "fleet"},
    "agents": set(),
    "telemetry": {"runtime"},
    "mcp": {"tools", "runtime"},
    "cli": {"tools", "runtime", "journal", "fleet", "agents", "telemetry", "mcp", "testing"},
    "testing": set(),
}


def _module_name(path: Path) -> str:
    parts = ["bridge", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, imported names, line) for every `from X import ...` in the file, at any depth."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [a.name for a in node.names], node.lineno))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "bridge" and parts[1] in LAYERS else None


SOURCES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_crosses_a_layer(path: Path) -> None:
    """A module imports another layer only through that layer's package, and only its public names."""
    here = _layer(_module_name(path))
    for target, names, line in _imports(path):
        there = _layer(target)
        if there is None or there == here or here is None:
            continue
        where = f"{path.relative_to(ROOT)}:{line}"
        assert target == f"bridge.{there}", f"{where} imports the private module {target}"
        assert not [n for n in names if n.startswith("_")], f"{where} imports private names {names} from {target}"
        assert there in ALLOWED[here], f"{where}: the {here} layer must not depend on {there}"


def test_top_level_modules_are_few() -> None:
    """`bridge/` itself holds only the public surface and the shared exception tree."""
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py", "__main__.py", "_errors.py"]
