"""tool-bridge: serve local Python functions as custom tools to Claude Managed Agents.

`Bridge` and the agent-sync helpers are imported on first use: they load the Anthropic SDK, which takes about a
second, and defining, testing or listing tools (`bridge tools`, `bridge --help`) does not need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._content import CallResult, ContentBlock, ToolResult, document, image
from ._context import ToolContext
from ._errors import (
    AgentConflictError,
    APIAccessError,
    BridgeError,
    ConfigError,
    DefinitionError,
    JournalError,
    JournalLockedError,
    JournalSchemaError,
    OperatorError,
    SessionNotFoundError,
    ToolError,
    TransportError,
)
from ._limits import Limits, Timeouts
from ._lint import LintIssue, LintReport
from ._observe import BridgeStats, CallEvent, CallEventKind, Latency
from ._options import ToolOptions, tool
from ._tool import Tool
from ._toolset import Toolset

if TYPE_CHECKING:
    from ._bridge import Bridge
    from ._sync import SyncResult, ToolChange, ToolDiff, create_agent, diff_tools, sync_agent

_LAZY = {
    "Bridge": "._bridge",
    "SyncResult": "._sync",
    "ToolChange": "._sync",
    "ToolDiff": "._sync",
    "create_agent": "._sync",
    "diff_tools": "._sync",
    "sync_agent": "._sync",
}
"""Public names whose modules import the Anthropic SDK, and those modules: loaded by `__getattr__` when first used."""

__all__ = [
    "APIAccessError",
    "AgentConflictError",
    "Bridge",
    "BridgeError",
    "BridgeStats",
    "CallEvent",
    "CallEventKind",
    "CallResult",
    "ConfigError",
    "ContentBlock",
    "DefinitionError",
    "JournalError",
    "JournalLockedError",
    "JournalSchemaError",
    "Latency",
    "Limits",
    "LintIssue",
    "LintReport",
    "OperatorError",
    "SessionNotFoundError",
    "SyncResult",
    "Timeouts",
    "Tool",
    "ToolChange",
    "ToolContext",
    "ToolDiff",
    "ToolError",
    "ToolOptions",
    "ToolResult",
    "Toolset",
    "TransportError",
    "create_agent",
    "diff_tools",
    "document",
    "image",
    "sync_agent",
    "tool",
]


def __getattr__(name: str) -> Any:
    """Import a runtime name (see `_LAZY`) on first use and keep it, so later lookups are plain attributes."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
