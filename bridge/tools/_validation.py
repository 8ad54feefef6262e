"""Validate a call's input and, when it is wrong, tell the model exactly how to fix it.

Validation is lax (pydantic's default coercions: "7" -> 7, 7 -> "7") with two repairs models often need: a list or
object parameter sent as a JSON string (`"[1, 2]"`) is parsed, and `null` for a parameter that has a default and
does not accept null means "use the default". Unknown keys are errors at every depth (pydantic would silently drop
them inside nested models), each with a "did you mean" when a declared name is close.

How the failure reads is `_problems.py`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pydantic

from ._problems import (
    InputError,
    Path,
    Problem,
    child_schema,
    did_you_mean,
    echo,
    object_branches,
    problem_text,
    pydantic_problems,
    schema_types,
)
from ._signature import CompiledSignature

__all__ = ["InputValidator"]


class InputValidator:
    """Validates raw tool input against a compiled signature and its Claude-ready schema."""

    def __init__(self, compiled: CompiledSignature, schema: Mapping[str, Any]) -> None:
        self.compiled = compiled
        self.schema = schema
        properties: Mapping[str, Any] = schema.get("properties", {})
        self._repairable = [
            name
            for name, node in properties.items()
            if schema_types(node) & {"array", "object"} and not schema_types(node) & {"string", "any"}
        ]
        self._declared = {p.name for p in compiled.params}
        self._null_means_default = [
            p.name
            for p in compiled.params
            if p.has_default and not schema_types(properties.get(p.name, {})) & {"null", "any"}
        ]

    def _repair(self, data: dict[str, Any]) -> None:
        for name in self._repairable:
            value = data.get(name)
            if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
                try:
                    parsed = json.loads(value)
                except ValueError:
                    continue
                if isinstance(parsed, list | dict):
                    data[name] = parsed
        for name in self._null_means_default:
            if name in data and data[name] is None:
                del data[name]

    def _unknown_keys(self, value: Any, node: Mapping[str, Any] | None, path: Path, out: list[Problem]) -> None:
        if node is None:
            return
        if isinstance(value, Mapping):
            branches = object_branches(node)
            if not branches:
                return
            if all(branch.get("additionalProperties") is False for branch in branches):
                names = list(dict.fromkeys(name for branch in branches for name in branch.get("properties", {})))
                for key in value:
                    if key not in names:
                        hint = did_you_mean(str(key), names) or "."
                        allowed = f" Allowed fields: {', '.join(names)}." if 0 < len(names) <= 20 else ""
                        out.append(Problem((*path, str(key)), f"unknown field{hint}{allowed}"))
            for key, item in value.items():
                self._unknown_keys(item, child_schema(node, str(key)), (*path, str(key)), out)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._unknown_keys(item, child_schema(node, index), (*path, index), out)

    def validate(self, data: object, tool_name: str) -> tuple[pydantic.BaseModel, dict[str, Any]]:
        """The validated input: the model instance and the validated `**kwargs` extras.

        Args:
            data: The call's input, as decoded from the event.
            tool_name: The name the model called the tool by (for the error text).

        Raises:
            InputError: With the text the model should read.
        """
        if data is None:
            data = {}  # an omitted input means "no arguments"
        if not isinstance(data, Mapping):
            raise InputError(
                problem_text(tool_name, [Problem((), f"the input must be a JSON object; got {echo(data)}")])
            )
        raw = dict(data)
        self._repair(raw)
        problems: list[Problem] = []
        self._unknown_keys(raw, self.schema, (), problems)
        reported = {problem.path for problem in problems}
        extras: dict[str, Any] = {}
        if self.compiled.extras is not None:
            extras = {key: raw.pop(key) for key in list(raw) if key not in self._declared}
            try:
                extras = self.compiled.extras.validate_python(extras)
            except pydantic.ValidationError as exc:
                problems.extend(pydantic_problems(exc, self.schema, reported))
        try:
            validated = self.compiled.model.model_validate(raw)
        except pydantic.ValidationError as exc:
            problems.extend(pydantic_problems(exc, self.schema, reported))
        if problems:
            raise InputError(problem_text(tool_name, problems))
        return validated, extras
