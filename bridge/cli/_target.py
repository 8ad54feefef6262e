"""TARGET: how the `bridge` command finds the tools to serve.

A TARGET is `module:attr` (importable from the working directory) or `path/to/file.py:attr`, naming one of:

- a tool (a `@tool` function or a `Tool`),
- a list or tuple of tools (or of toolsets),
- a `Toolset`,
- a factory: any other callable, called with the options given (`bridge.toml` toolset keys) and returning one of
  the above. A factory with required parameters needs them in the config; a plain function meant as a tool must be
  decorated with `@tool` so it is never called at load time by mistake.

Every failure is a `ConfigError` that says which TARGET failed and what to do, never a bare traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, DefinitionError

if TYPE_CHECKING:
    from ..tools import Toolset

__all__ = ["import_target", "load_target", "load_targets"]


def import_target(spec: str, *, cwd: Path | None = None) -> Any:
    """Import the object a TARGET names, without interpreting it.

    Args:
        spec: `module:attr`, `module:attr.sub` or `file.py:attr`.
        cwd: Directory that module names and relative paths resolve from (the working directory by default). It is
            put on `sys.path`, as `python -m` would, so a project's own packages import.

    Raises:
        ConfigError: The spec is malformed, the module or file cannot be imported, or the attribute is missing.
    """
    module_part, sep, attr_path = spec.rpartition(":")
    if not sep or not module_part or not attr_path:
        raise ConfigError(f"TARGET {spec!r}: expected module:attr or path/to/file.py:attr (e.g. myapp.tools:toolset)")
    base = (cwd or Path.cwd()).resolve()
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        module = _import_file(spec, base / module_part)
    else:
        module = _import_module(spec, module_part)
    obj: Any = module
    for depth, name in enumerate(attr_path.split(".")):
        if not hasattr(obj, name):
            where = module_part if depth == 0 else ".".join(attr_path.split(".")[:depth])
            raise ConfigError(f"TARGET {spec!r}: {where} has no attribute {name!r}{_candidates(obj)}")
        obj = getattr(obj, name)
    return obj


def load_target(
    spec: str, options: Mapping[str, Any] | None = None, *, prefix: str | None = None, cwd: Path | None = None
) -> Toolset:
    """Import a TARGET and turn it into a `Toolset`, calling it first when it is a factory.

    Args:
        spec: The TARGET (see the module docstring).
        options: Keyword arguments for a factory (the `bridge.toml` toolset keys). Giving options for anything but a
            factory is an error, since they would be silently ignored.
        prefix: A name prefix. A factory that takes a `prefix` parameter (as the toolkit packs do) receives it, so
            it replaces the pack's default prefix; anything else is prefixed with `Toolset.with_prefix`.
        cwd: See `import_target`.

    Raises:
        ConfigError: The TARGET cannot be imported, or is not something that can be served.
        DefinitionError: A tool in it cannot be registered (the message carries the fix).
    """
    from ..tools import Toolset

    obj = import_target(spec, cwd=cwd)
    options = dict(options or {})
    if _is_servable(obj):
        if options:
            raise ConfigError(
                f"TARGET {spec!r} is {_describe(obj)}, not a factory, so it takes no options "
                f"(got {', '.join(sorted(options))})"
            )
    elif callable(obj):
        if prefix is not None and _accepts(obj, "prefix"):
            options["prefix"], prefix = prefix, None
        obj = _call_factory(spec, obj, options)
    else:
        raise ConfigError(
            f"TARGET {spec!r} is {_describe(obj)}; expected a tool, a list of tools, a Toolset, "
            "or a factory returning one"
        )
    try:
        toolset = Toolset.coerce(obj)
    except DefinitionError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"TARGET {spec!r}: cannot serve {_describe(obj)}: {exc}") from None
    return toolset.with_prefix(prefix) if prefix else toolset


def load_targets(specs: Sequence[str], *, cwd: Path | None = None) -> list[Toolset]:
    """Load several TARGETs, reporting every one that fails in a single `ConfigError`."""
    toolsets: list[Toolset] = []
    problems: list[str] = []
    for spec in specs:
        try:
            toolsets.append(load_target(spec, cwd=cwd))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return toolsets


def _import_module(spec: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(
                f"TARGET {spec!r}: no module named {exc.name!r} (run from the project root, or give a file path "
                "like path/to/tools.py:toolset)"
            ) from None
        raise ConfigError(f"TARGET {spec!r}: importing {name} failed: {_last_frame(exc)}") from None
    except Exception as exc:
        raise ConfigError(f"TARGET {spec!r}: importing {name} failed: {_last_frame(exc)}") from None


def _import_file(spec: str, path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"TARGET {spec!r}: file {str(path)!r} does not exist")
    name = f"_bridge_target_{path.stem}_{abs(hash(str(path))):x}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"TARGET {spec!r}: {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # pydantic and dataclasses look their module up while the file runs
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # so the file can import its siblings
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"TARGET {spec!r}: running {path.name} failed: {_last_frame(exc)}") from None
    return module


def _call_factory(spec: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> Any:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(**options)
        except TypeError as exc:
            params = ", ".join(signature.parameters) or "no parameters"
            if not options:
                raise ConfigError(
                    f"TARGET {spec!r}: {_name(factory)}({params}) has required parameters: to serve it as a tool, "
                    "decorate it with @tool; if it is a factory, give its arguments as [toolsets.NAME] keys in "
                    "bridge.toml"
                ) from None
            raise ConfigError(
                f"TARGET {spec!r}: factory {_name(factory)}({params}) cannot take the options given: {exc}"
            ) from None
    try:
        result = factory(**options)
    except Exception as exc:
        raise ConfigError(f"TARGET {spec!r}: factory {_name(factory)}() failed: {_last_frame(exc)}") from None
    if inspect.isawaitable(result):
        if hasattr(result, "close"):
            result.close()
        raise ConfigError(
            f"TARGET {spec!r}: factory {_name(factory)} is async; make it a plain function returning a Toolset "
            "(a Toolset opens its resources itself when the bridge enters it)"
        )
    if not _is_servable(result):
        raise ConfigError(
            f"TARGET {spec!r}: {_name(factory)}() returned {_describe(result)}; a factory must return a Toolset, "
            f"a tool or a list of tools (to serve {_name(factory)} itself as a tool, decorate it with @tool)"
        )
    return result


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _is_servable(obj: Any) -> bool:
    from ..tools import Tool, Toolset

    if isinstance(obj, Toolset | Tool) or hasattr(obj, "__bridge_tool__"):
        return True
    if _is_sdk_tool(obj):
        return True
    if isinstance(obj, list | tuple):
        return bool(obj) and all(_is_servable(item) or _is_plain_function(item) for item in obj)
    return False


def _is_sdk_tool(obj: Any) -> bool:
    return type(obj).__module__.startswith("anthropic.") and hasattr(obj, "to_dict") and hasattr(obj, "name")


def _is_plain_function(obj: Any) -> bool:
    return inspect.isfunction(obj) or inspect.iscoroutinefunction(obj)


def _describe(obj: Any) -> str:
    if isinstance(obj, list | tuple):
        return f"a {type(obj).__name__} of {len(obj)} item(s)" if obj else f"an empty {type(obj).__name__}"
    if inspect.isfunction(obj):
        return f"the function {_name(obj)}"
    return f"a {type(obj).__name__}"


def _name(obj: Any) -> str:
    return str(getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj))))


def _candidates(obj: Any) -> str:
    """Names in a module that could be served, to suggest when an attribute is missing."""
    if not isinstance(obj, ModuleType):
        return ""
    try:
        from ..tools import Tool, Toolset
    except ImportError:  # pragma: no cover - the foundation is always present in a release
        return ""
    names = sorted(
        name
        for name, value in vars(obj).items()
        if not name.startswith("_") and (isinstance(value, Toolset | Tool) or hasattr(value, "__bridge_tool__"))
    )
    return f" (it defines: {', '.join(names)})" if names else ""


def _last_frame(exc: BaseException) -> str:
    """`Type: message (file:line)` of where an exception was raised, short enough for one log line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
