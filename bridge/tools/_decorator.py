"""`@tool` and `ToolOptions`: attach frozen options to a function and return the function itself.

The decorator does nothing else: no schema is built, nothing is registered. The function stays a plain function,
callable and testable as written; a `Tool` is built when it is registered (`Toolset([...])` or
`Tool.from_function`), so a bad signature fails there, with the fix in the message.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .._errors import DefinitionError
from ._approval import ApprovalPolicy, check_policy
from ._budget import MIN_BUDGET

__all__ = ["NAME_PATTERN", "ToolOptions", "check_name", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""Tool names Claude accepts everywhere (Messages and Managed Agents)."""

_ATTRIBUTE = "__bridge_tool__"


def check_name(name: str) -> str:
    """Return `name` if Claude accepts it as a tool name, else raise with a corrected suggestion."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        fixed = re.sub(r"[^a-zA-Z0-9_-]+", "_", str(name)).strip("_")[:64] or "tool"
        raise DefinitionError(
            f"invalid tool name {name!r}: Claude accepts 1-64 ASCII letters, digits, '_' and '-'. "
            f"Pass name={fixed!r} (or rename the function)."
        )
    return name


@dataclass(frozen=True)
class ToolOptions:
    """Everything `@tool(...)` can say about a tool. Unset options defer to the toolset, then the bridge.

    Attributes:
        name: Tool name; defaults to the function name.
        description: Tool description; defaults to the docstring's summary and body.
        timeout: Seconds a call may run before the runtime answers with a timeout error.
        max_concurrency: Calls of this tool allowed to run at once (across sessions).
        idempotent: Safe to run twice with the same input: the runtime may re-run it after a crash.
        read_only: Changes nothing; informational, shown in `bridge tools`.
        destructive: Deletes or overwrites; informational, shown in `bridge tools`.
        strict: Send the strict-mode subset of the schema (constraints the subset lacks move into descriptions;
            input is still validated against all of them).
        output_budget: Most characters a result may carry: text past it is cut with a marker, and an image or
            document (counted as its base64 JSON) that does not fit is replaced by a marker.
        concurrency_key: Name of an input field whose value keys a per-value limit of `max_concurrency` calls
            (e.g. one refund at a time per `order_id`).
        approval: Whether a call may run: `"allow"`, `"deny"`, `"ask"` (park it until a person decides), an
            `Approval`, or a function of an `ApprovalRequest` returning one (see `bridge.Approval`). Unset defers
            to the toolset, then the bridge; unset everywhere allows.
    """

    name: str | None = None
    description: str | None = None
    timeout: float | None = None
    max_concurrency: int | None = None
    idempotent: bool = False
    read_only: bool = False
    destructive: bool = False
    strict: bool = False
    output_budget: int | None = None
    concurrency_key: str | None = None
    approval: ApprovalPolicy | None = None

    def __post_init__(self) -> None:
        check_policy(self.approval)
        if self.name is not None:
            check_name(self.name)
        if self.description is not None and not self.description.strip():
            raise DefinitionError("description=... is empty; give the model a sentence about what the tool does")
        if self.timeout is not None and not self.timeout > 0:
            raise DefinitionError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.max_concurrency is not None and (
            isinstance(self.max_concurrency, bool)
            or not isinstance(self.max_concurrency, int)
            or self.max_concurrency < 1
        ):
            raise DefinitionError(f"max_concurrency must be an integer >= 1, got {self.max_concurrency!r}")
        if self.output_budget is not None and (
            not isinstance(self.output_budget, int) or self.output_budget < MIN_BUDGET
        ):
            raise DefinitionError(f"output_budget must be an integer >= {MIN_BUDGET}, got {self.output_budget!r}")
        if self.read_only and self.destructive:
            raise DefinitionError("a tool cannot be both read_only and destructive; drop one of the two")
        if self.concurrency_key is not None and self.max_concurrency is None:
            raise DefinitionError(
                f"concurrency_key={self.concurrency_key!r} limits calls per key to max_concurrency; set max_concurrency"
            )

    def replace(self, **changes: Any) -> ToolOptions:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)


def options_of(fn: object) -> ToolOptions | None:
    """The options `@tool` attached to `fn`, if any."""
    options = getattr(fn, _ATTRIBUTE, None)
    return options if isinstance(options, ToolOptions) else None


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    name_: str | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_concurrency: int | None = None,
    idempotent: bool = False,
    read_only: bool = False,
    destructive: bool = False,
    strict: bool = False,
    output_budget: int | None = None,
    concurrency_key: str | None = None,
    approval: ApprovalPolicy | None = None,
) -> Callable[[F], F]: ...


def tool(fn: Any = None, /, **options: Any) -> Any:
    """Mark a function as a tool and attach its options; returns the function unchanged.

    Use as `@tool`, `@tool()`, `@tool("name")` or `@tool(name=..., timeout=...)`. See `ToolOptions` for every
    option.

    Raises:
        DefinitionError: An option is invalid (bad name, negative timeout, ...).
    """
    if isinstance(fn, str):
        options["name"] = fn
        fn = None
    frozen = ToolOptions(**options)

    def attach(target: F) -> F:
        if not callable(target):
            raise DefinitionError(f"@tool decorates functions, got {target!r}")
        try:
            setattr(target, _ATTRIBUTE, frozen)
        except (AttributeError, TypeError):
            raise DefinitionError(
                f"cannot attach tool options to {target!r}; wrap it in a def, or use Tool.from_function(fn, ...)"
            ) from None
        return target

    return attach if fn is None else attach(fn)
