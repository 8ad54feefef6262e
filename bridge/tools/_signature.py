"""Function signature -> the pydantic model that validates a call's input.

Each model-visible parameter becomes a field of a generated model. Fields get private names (`p0`, `p1`, ...) and the
parameter name as alias, so a parameter may be called `model_config`, `json` or `_x` without clashing with pydantic.
Parameters annotated `ToolContext` (in any position) are left out: the bridge fills them in at call time.

Everything that cannot work is refused here, at registration, with the fix in the message: positional-only
parameters, `*args`, generator functions, names the API rejects, and types with no JSON form.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from .._errors import DefinitionError
from ._context import ToolContext
from ._lint import LintIssue

__all__ = ["CompiledSignature", "Parameter", "compile_signature"]

_PROPERTY_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Parameter:
    """One model-visible parameter: its name in the schema and its field in the generated model."""

    name: str
    field: str
    has_default: bool
    annotated: bool


@dataclass(frozen=True)
class CompiledSignature:
    """How to validate input for a function and how to call it with the result.

    Attributes:
        model: Validates the input object (full constraints, lax mode, unknown top-level keys forbidden).
        params: The model-visible parameters, in signature order.
        context_params: Parameters that receive the `ToolContext`, with whether each is positional-only.
        extras: Validates the keys that are not parameters when the function takes `**kwargs` (None otherwise).
    """

    model: type[BaseModel]
    params: tuple[Parameter, ...]
    context_params: tuple[tuple[str, bool], ...]
    extras: pydantic.TypeAdapter[dict[str, Any]] | None

    def arguments(
        self, validated: BaseModel, extras: dict[str, Any], context: ToolContext
    ) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments for the function from validated input."""
        kwargs = {**extras, **{param.name: getattr(validated, param.field) for param in self.params}}
        args: list[Any] = []
        for name, positional in self.context_params:
            if positional:
                args.append(context)
            else:
                kwargs[name] = context
        return args, kwargs


def _is_context(annotation: Any) -> bool:
    """True for `ToolContext`, `ToolContext | None` and `Annotated[ToolContext, ...]` (also as strings)."""
    if annotation is ToolContext:
        return True
    if isinstance(annotation, str):
        return annotation.replace(" ", "") in ("ToolContext", "ToolContext|None", "Optional[ToolContext]")
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_context(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return len(members) == 1 and _is_context(members[0])
    return False


def _annotated_text(annotation: Any) -> tuple[str | None, bool]:
    """From `Annotated[T, ...]`: the first plain-string metadata, and whether a `Field` already sets a description."""
    if get_origin(annotation) is not Annotated:
        return None, False
    text: str | None = None
    has_field_description = False
    for meta in annotation.__metadata__:
        if isinstance(meta, str) and text is None and meta.strip():
            text = meta.strip()
        elif isinstance(meta, FieldInfo) and meta.description:
            has_field_description = True
    return text, has_field_description


def _hints(fn: Callable[..., Any], tool_name: str) -> dict[str, Any]:
    """Resolved annotations, with a fix when a forward reference cannot be resolved."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(target, "__call__", target)  # noqa: B004
    try:
        return typing.get_type_hints(target, include_extras=True)
    except NameError as exc:
        raise DefinitionError(
            f"tool {tool_name!r}: cannot resolve the annotation {exc.name!r}. Define that type at module level "
            "(annotations are evaluated in the function's module), or import it there."
        ) from None
    except TypeError:
        return {}


def _refuse(tool_name: str, param: inspect.Parameter) -> None:
    """Raise for parameter kinds a JSON object cannot carry."""
    if param.kind is inspect.Parameter.POSITIONAL_ONLY:
        raise DefinitionError(
            f"tool {tool_name!r}: parameter {param.name!r} is positional-only, but tool input arrives by name. "
            "Remove the '/' from the signature."
        )
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        raise DefinitionError(
            f"tool {tool_name!r}: *{param.name} cannot be filled from a JSON object. "
            f"Replace it with a list parameter, e.g. `{param.name}: list[str]`."
        )
    if not _PROPERTY_NAME.match(param.name):
        raise DefinitionError(
            f"tool {tool_name!r}: parameter name {param.name!r} is not accepted by the API "
            "(ASCII letters, digits, '_', '.', '-', at most 64). Rename the parameter."
        )


def _culprit(fields: Mapping[str, tuple[Any, FieldInfo]]) -> str:
    """The parameter whose type pydantic cannot handle (for the error message)."""
    for spec in fields.values():
        annotation, info = spec
        try:
            pydantic.TypeAdapter(annotation)
        except Exception:
            return f"parameter {info.alias!r} ({getattr(annotation, '__name__', annotation)!s})"
    return "a parameter"


def compile_signature(
    fn: Callable[..., Any], tool_name: str, param_docs: Mapping[str, str]
) -> tuple[CompiledSignature, list[LintIssue]]:
    """Build the input model for `fn`.

    Args:
        fn: The tool function (or any callable with a signature).
        tool_name: For error messages.
        param_docs: Parameter descriptions from the docstring (lowest precedence).

    Returns:
        The compiled signature and lint notes (e.g. parameters without a type).

    Raises:
        DefinitionError: The signature cannot be served as a tool; the message says how to fix it.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"tool {tool_name!r}: cannot read the signature of {fn!r}: {exc}") from None
    hints = _hints(fn, tool_name)
    notes: list[LintIssue] = []
    fields: dict[str, tuple[Any, FieldInfo]] = {}
    params: list[Parameter] = []
    context_params: list[tuple[str, bool]] = []
    var_kwargs: Any = None
    for param in signature.parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if _is_context(annotation):
            context_params.append((param.name, param.kind is inspect.Parameter.POSITIONAL_ONLY))
            continue
        _refuse(tool_name, param)
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            var_kwargs = Any if annotation is inspect.Parameter.empty else annotation
            continue
        annotated = annotation is not inspect.Parameter.empty
        if not annotated:
            annotation = Any
            notes.append(LintIssue(param.name, "lossy", "no type annotation, so the model may send any JSON value"))
        default = param.default
        info = default if isinstance(default, FieldInfo) else None
        text, field_has_description = _annotated_text(annotation)
        description = None
        if not field_has_description and not (info is not None and info.description):
            description = text or param_docs.get(param.name)
        extra: dict[str, Any] = {"alias": param.name}
        if description:
            extra["description"] = description
        if info is not None:
            annotation, field_info = Annotated[annotation, info], Field(**extra)
        elif default is inspect.Parameter.empty:
            field_info = Field(**extra)
        else:
            field_info = Field(default, **extra)
        internal = f"p{len(fields)}"
        fields[internal] = (annotation, field_info)
        has_default = default is not inspect.Parameter.empty and not (info is not None and info.is_required())
        params.append(Parameter(param.name, internal, has_default, annotated))
    config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    try:
        model = pydantic.create_model("Input", __config__=config, **fields)  # type: ignore[call-overload]
        extras = None if var_kwargs is None else pydantic.TypeAdapter(dict[str, var_kwargs], config=config)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        reason = str(exc).split("\n\nFor further information")[0]
        raise DefinitionError(
            f"tool {tool_name!r}: {_culprit(fields)} has a type that cannot be validated from JSON ({reason}). "
            "Use JSON-friendly types: str, int, float, bool, list, dict, Literal, Enum, datetime, "
            "pydantic models, dataclasses or TypedDicts."
        ) from None
    compiled = CompiledSignature(model, tuple(params), tuple(context_params), extras)
    return compiled, notes
