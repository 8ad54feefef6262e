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

__all__ = [
    "APIAccessError",
    "BridgeError",
    "ConfigError",
    "DefinitionError",
    "JournalError",
    "JournalLockedError",
    "JournalSchemaError",
    "OperatorError",
    "SessionNotFoundError",
    "ToolError",
    "TransportError",
]
