"""tool-bridge: serve local Python functions as custom tools to Claude Managed Agents."""

from ._errors import (
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
from ._observe import BridgeStats, CallEvent, CallEventKind, Latency

__all__ = [
    "APIAccessError",
    "BridgeError",
    "BridgeStats",
    "CallEvent",
    "CallEventKind",
    "ConfigError",
    "DefinitionError",
    "JournalError",
    "JournalLockedError",
    "JournalSchemaError",
    "Latency",
    "Limits",
    "OperatorError",
    "SessionNotFoundError",
    "Timeouts",
    "ToolError",
    "TransportError",
]
