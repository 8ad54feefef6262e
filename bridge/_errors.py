"""One exception tree, split by who must act.

```
BridgeError                      base of everything tool-bridge raises
├── ToolError                    the model must act: raised by a tool, posted as an is_error result
├── DefinitionError              the developer must act: a tool/toolset cannot be registered (the fix is in the message)
├── OperatorError                the operator must act: configuration, credentials, the API, the journal
│   ├── ConfigError              invalid options or config file (lists every problem)
│   ├── APIAccessError           401/403: the key cannot reach the session or agent
│   ├── SessionNotFoundError     404: the session (or agent) does not exist
│   ├── TransportError           the API stayed unreachable after retries
│   ├── AgentConflictError       an agent kept changing under `bridge sync` (its version moved twice)
│   └── JournalError             the durable journal cannot be used
│       ├── JournalLockedError   another process holds the journal
│       └── JournalSchemaError   the journal file was written by a newer tool-bridge
├── Fenced                       a fleet member no longer surely holds a session's lease: it posts nothing for it
└── (nothing else: tools' own exceptions are masked, never re-raised into the bridge)
```

`ToolError` is the only one a tool author raises on purpose: its message goes to the model verbatim. Any other
exception raised by a tool is masked ("tool X failed (ref ...)") and its traceback logged, so internals never leak
into the conversation.
"""

from __future__ import annotations

__all__ = [
    "APIAccessError",
    "AgentConflictError",
    "BridgeError",
    "ConfigError",
    "DefinitionError",
    "Fenced",
    "JournalError",
    "JournalLockedError",
    "JournalSchemaError",
    "OperatorError",
    "SessionNotFoundError",
    "ToolError",
    "TransportError",
]


class BridgeError(Exception):
    """Base class of every exception tool-bridge raises."""


class ToolError(BridgeError):
    """Raised by a tool to tell the model what went wrong; the message is posted as an `is_error` result.

    Use it for failures the model can act on ("order 42 does not exist", "amount exceeds the refund limit").
    """


class DefinitionError(BridgeError, TypeError):
    """A function, tool or toolset cannot be registered. Raised at registration, never mid-session."""


class OperatorError(BridgeError):
    """Something the person running the bridge must fix: configuration, credentials, the API, the journal."""


class ConfigError(OperatorError, ValueError):
    """Invalid options or an invalid config file. The message lists every problem found, not just the first."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class APIAccessError(OperatorError):
    """The API refused the credentials (401) or the permission (403) for a session or agent."""


class SessionNotFoundError(OperatorError):
    """The session or agent does not exist (404), or was deleted."""


class TransportError(OperatorError):
    """The API stayed unreachable or kept failing after every retry."""


class AgentConflictError(OperatorError):
    """Someone else kept updating the agent while a sync pushed its tools (the optimistic `version` moved twice)."""


class JournalError(OperatorError):
    """The durable journal cannot be opened or written."""


class JournalLockedError(JournalError):
    """Another process holds the journal's exclusive lock."""


class JournalSchemaError(JournalError):
    """The journal's schema is newer than this version of tool-bridge understands."""


class Fenced(BridgeError):
    """A request for a session this process does not (surely) hold the lease on was stopped before it was sent.

    Raised by the fleet's HTTP client (`bridge.fleet.fleet_http_client`) and by the runtime's own check before each
    post; the SDK reports it as a connection error caused by this one, and the runtime's boundary (`_sdk.classify`)
    recognises it as `FENCED`: never retried, the session is stopped at once (the lease-lost path).
    """

    def __init__(self, session_id: str) -> None:
        super().__init__(f"not posting to session {session_id}: this process does not hold its lease")
        self.session_id = session_id
