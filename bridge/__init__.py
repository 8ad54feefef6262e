"""tool-bridge: serve local Python functions as custom tools to Claude Managed Agents.

`Bridge` and the agent-sync helpers are imported on first use: they load the Anthropic SDK, which takes about a
second, and defining, testing or listing tools (`bridge tools`, `bridge --help`) does not need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from .runtime import (
    Approvals,
    ApprovalSettings,
    BridgeStats,
    CallEvent,
    CallEventKind,
    Latency,
    Limits,
    PendingApproval,
    PostEvent,
    PostOutcome,
    Timeouts,
)
from .tools import (
    Approval,
    ApprovalPolicy,
    ApprovalRequest,
    CallResult,
    ContentBlock,
    LintIssue,
    LintReport,
    Tool,
    ToolContext,
    ToolOptions,
    ToolResult,
    Toolset,
    document,
    image,
    tool,
)

if TYPE_CHECKING:
    from .agents import SyncResult, ToolChange, ToolDiff, create_agent, diff_tools, sync_agent
    from .runtime import Bridge

_LAZY = {
    "Bridge": ".runtime",
    "SyncResult": ".agents",
    "ToolChange": ".agents",
    "ToolDiff": ".agents",
    "create_agent": ".agents",
    "diff_tools": ".agents",
    "sync_agent": ".agents",
}
"""Public names whose modules import the Anthropic SDK, and those modules: loaded by `__getattr__` when first used."""

__all__ = [
    "APIAccessError",
    "AgentConflictError",
    "Approval",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalSettings",
    "Approvals",
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
    "PendingApproval",
    "PostEvent",
    "PostOutcome",
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
