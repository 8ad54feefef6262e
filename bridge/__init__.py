"""tool-bridge: serve local Python functions as custom tools to Claude Managed Agents."""

from ._bridge import Bridge
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
from ._sync import SyncResult, ToolChange, ToolDiff, create_agent, diff_tools, sync_agent
from ._tool import Tool
from ._toolset import Toolset

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
