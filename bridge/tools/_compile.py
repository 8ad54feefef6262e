"""Function -> `Impl`: everything a tool needs to run, compiled once at registration.

The steps, each in its own module: docstring (`_docstrings`), signature and input model (`_signature`),
Claude-ready schema (`_schema`), validator (`_validation`); here they are put together and the tool-level checks run
(a description exists, `concurrency_key` names a parameter, the lint findings are collected).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import DefinitionError
from ._context import ToolContext
from ._decorator import ToolOptions
from ._docstrings import ParsedDocstring, parse_docstring
from ._lint import LintIssue
from ._schema import build_schema, strict_subset
from ._signature import compile_signature
from ._validation import InputValidator

__all__ = ["Impl", "build_impl", "function_name", "is_cm_factory"]


def is_cm_factory(fn: object) -> bool:
    """True for functions made by `contextlib.contextmanager` / `asynccontextmanager` (detected, never called)."""
    wrapped = getattr(fn, "__wrapped__", None)
    return wrapped is not None and (inspect.isgeneratorfunction(wrapped) or inspect.isasyncgenfunction(wrapped))


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def function_name(fn: Callable[..., Any]) -> str | None:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__name__", None)
    return None if name is None or name == "<lambda>" else str(name)


def _doc_of(fn: Callable[..., Any]) -> str | None:
    """The docstring that describes calling `fn` (a partial's function, a callable object's `__call__`)."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isfunction(target) or inspect.ismethod(target):
        return target.__doc__
    call = getattr(type(target), "__call__", None)  # noqa: B004
    return getattr(call, "__doc__", None) or type(target).__doc__


@dataclass(frozen=True)
class Impl:
    """What a tool runs once its function is known (at registration, or when its resource opens)."""

    fn: Callable[..., Any]
    is_async: bool
    description: str
    input_schema: dict[str, Any]
    issues: tuple[LintIssue, ...]
    bind: Callable[[object, ToolContext, str], tuple[list[Any], dict[str, Any]]]
    validate: Callable[[object, str], dict[str, Any]] | None = None  # the validated input by parameter name


def build_impl(fn: Callable[..., Any], name: str, options: ToolOptions, fallback_doc: str | None = None) -> Impl:
    """Compile `fn` into an `Impl`: docstring, signature, validator, Claude-ready schema, lint findings.

    Raises:
        DefinitionError: With the fix, when `fn` cannot be served as a tool.
    """
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise DefinitionError(
            f"tool {name!r} is a generator; a tool returns one value. Return a list, or decorate a resource "
            "factory with @contextmanager/@asynccontextmanager so it yields the tool function."
        )
    doc = parse_docstring(_doc_of(fn))
    outer = parse_docstring(fallback_doc)
    description = options.description or outer.description or doc.description
    doc = ParsedDocstring(description, {**outer.params, **doc.params})
    if not description:
        raise DefinitionError(
            f"tool {name!r} has no description, and Managed Agents requires one: add a docstring saying what it "
            "does and when to use it, or pass description=..."
        )
    signature, notes = compile_signature(fn, name, doc.params)
    schema, issues = build_schema(signature.model, name, signature.extras)
    issues = notes + issues
    properties = schema["properties"]
    for param in doc.params:
        if param not in properties and param not in {p for p, _ in signature.context_params}:
            issues.append(LintIssue(param, "note", "documented in the docstring but not a parameter"))
    for param_name, node in properties.items():
        if "description" not in node:
            issues.append(LintIssue(param_name, "note", "no description: document it in the docstring's Args"))
    key = options.concurrency_key
    if key is not None and key not in properties:
        raise DefinitionError(
            f"tool {name!r}: concurrency_key={key!r} is not one of its parameters ({', '.join(properties) or 'none'})"
        )
    validator = InputValidator(signature, schema)
    if options.strict:
        schema, moved = strict_subset(schema)
        issues.extend(moved)

    def bind(data: object, context: ToolContext, tool_name: str) -> tuple[list[Any], dict[str, Any]]:
        validated, extras = validator.validate(data, tool_name)
        return signature.arguments(validated, extras, context)

    def validate(data: object, tool_name: str) -> dict[str, Any]:
        validated, extras = validator.validate(data, tool_name)
        return {**extras, **{param.name: getattr(validated, param.field) for param in signature.params}}

    return Impl(fn, _is_async(fn), description, schema, tuple(issues), bind, validate)
