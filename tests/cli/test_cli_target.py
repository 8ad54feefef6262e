"""TARGET loading: module:attr and file.py:attr naming a tool, a list, a Toolset or a factory; clear errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import ConfigError, Toolset
from bridge.cli._target import import_target, load_target, load_targets

TOOLS = '''
from bridge import Toolset, tool

@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b

@tool
def neg(a: int) -> int:
    """Negate a number."""
    return -a

def plain(a: int) -> int:
    """Not decorated."""
    return a

toolset = Toolset([add, neg])
tools = [add, neg]
number = 3

def factory(prefix: str = "", scale: int = 1) -> Toolset:
    return Toolset([add]).with_prefix(prefix) if prefix else Toolset([add])

def plain_factory() -> Toolset:
    return Toolset([add, neg])

def needs_args(path: str) -> Toolset:
    return Toolset([add])

def returns_junk() -> int:
    return 1

async def async_factory() -> Toolset:
    return Toolset([add])

def broken_factory() -> Toolset:
    raise RuntimeError("database unreachable")

class Holder:
    inner = toolset
'''


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A directory with a tools module (as a package module and as a file), cleaned from sys.modules after."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tools.py").write_text(TOOLS)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "helper.py").write_text("VALUE = 1\n")
    (tmp_path / "scripts" / "tools.py").write_text("import helper\n" + TOOLS)
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "crash.py").write_text("x = 1\nraise ValueError('boom at import')\n")
    before = set(sys.modules)
    path_before = list(sys.path)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]
    sys.path[:] = path_before


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("myapp.tools:toolset", ["add", "neg"]),
        ("myapp.tools:tools", ["add", "neg"]),
        ("myapp.tools:add", ["add"]),
        ("myapp.tools:factory", ["add"]),
        ("myapp.tools:Holder.inner", ["add", "neg"]),
        ("scripts/tools.py:toolset", ["add", "neg"]),
    ],
)
def test_targets_of_every_kind_become_toolsets(project: Path, spec: str, names: list[str]) -> None:
    """A Toolset, a list, a tool, a factory, a nested attribute and a file path all load as a Toolset."""
    toolset = load_target(spec, cwd=project)
    assert isinstance(toolset, Toolset)
    assert toolset.names() == names


def test_factory_options_are_passed(project: Path) -> None:
    """Options (bridge.toml toolset keys) are the factory's keyword arguments."""
    assert load_target("myapp.tools:factory", {"scale": 2}, cwd=project).names() == ["add"]


def test_prefix_goes_to_a_factory_that_takes_one_else_with_prefix(project: Path) -> None:
    """A factory with a `prefix` parameter (like the packs) gets the prefix; other targets get `with_prefix`."""
    assert load_target("myapp.tools:factory", prefix="m_", cwd=project).names() == ["m_add"]
    assert load_target("myapp.tools:plain_factory", prefix="m", cwd=project).names() == ["m_add", "m_neg"]
    assert load_target("myapp.tools:toolset", prefix="t", cwd=project).names() == ["t_add", "t_neg"]


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("myapp.tools", None, "expected module:attr or path/to/file.py:attr"),
        ("nope.tools:x", None, "no module named 'nope'"),
        ("myapp.tools:missing", None, "myapp.tools has no attribute 'missing' (it defines: add, neg, toolset)"),
        ("myapp.tools:Holder.nothing", None, "Holder has no attribute 'nothing'"),
        ("missing.py:x", None, "does not exist"),
        ("broken.py:x", None, "running broken.py failed: ModuleNotFoundError"),
        ("crash.py:x", None, "ValueError: boom at import (crash.py:2)"),
        ("myapp.tools:number", None, "is a int; expected a tool"),
        ("myapp.tools:toolset", {"path": "x"}, "not a factory, so it takes no options (got path)"),
        ("myapp.tools:needs_args", None, "needs_args(path) has required parameters"),
        ("myapp.tools:needs_args", {"pth": "x"}, "factory needs_args(path) cannot take the options given"),
        ("myapp.tools:factory", {"colour": 1}, "cannot take the options given"),
        ("myapp.tools:returns_junk", None, "returned a int; a factory must return a Toolset"),
        ("myapp.tools:async_factory", None, "factory async_factory is async"),
        ("myapp.tools:broken_factory", None, "factory broken_factory() failed: RuntimeError: database unreachable"),
        ("myapp.tools:plain", None, "decorate it with @tool"),
    ],
)
def test_bad_targets_fail_with_a_clear_message(
    project: Path, spec: str, options: dict[str, str] | None, message: str
) -> None:
    """Every way a TARGET can be wrong gives a ConfigError naming the TARGET and the fix."""
    with pytest.raises(ConfigError) as info:
        load_target(spec, options, cwd=project)
    assert message in str(info.value)
    assert spec in str(info.value)


def test_every_bad_target_is_reported_at_once(project: Path) -> None:
    """Loading several TARGETs lists all failures in one error, not just the first."""
    with pytest.raises(ConfigError) as info:
        load_targets(["nope:x", "myapp.tools:toolset", "myapp.tools:missing"], cwd=project)
    assert len(info.value.problems) == 2


def test_import_target_returns_the_raw_object(project: Path) -> None:
    """`import_target` resolves the attribute without interpreting it."""
    assert import_target("myapp.tools:number", cwd=project) == 3


def test_an_import_error_inside_the_module_is_not_mistaken_for_a_missing_module(project: Path) -> None:
    """A module that exists but fails to import its own dependency says which import failed."""
    (project / "myapp" / "bad.py").write_text("import not_installed_dependency\n")
    with pytest.raises(ConfigError, match=r"importing myapp\.bad failed: ModuleNotFoundError"):
        load_target("myapp.bad:x", cwd=project)
