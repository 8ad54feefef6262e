"""The serving layer: sessions' events in, tool calls run under limits, results posted exactly once.

`Limits`, `Timeouts` and the observation types are light and imported at once; `Bridge` loads the Anthropic SDK, so
it is imported on first use (`bridge --help` and `bridge tools` never pay for the SDK).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._approvals import (
    Approvals,
    ApprovalSettings,
    PendingApproval,
    denial_message,  # for bridge.mcp, which answers denials as agents get them
)
from ._limits import Limits, Timeouts
from ._observe import BridgeStats, CallEvent, CallEventKind, Latency, PostEvent, PostOutcome
from ._scheduler import Outcome, OutcomeKind, Scheduler, Ticket  # for bridge.mcp, which runs calls without a Bridge

if TYPE_CHECKING:
    from ._bridge import Bridge

__all__ = [
    "ApprovalSettings",
    "Approvals",
    "Bridge",
    "BridgeStats",
    "CallEvent",
    "CallEventKind",
    "Latency",
    "Limits",
    "PendingApproval",
    "PostEvent",
    "PostOutcome",
    "Timeouts",
]
__all__ += ["Outcome", "OutcomeKind", "Scheduler", "Ticket", "denial_message"]


def __getattr__(name: str) -> Any:
    if name != "Bridge":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = importlib.import_module("._bridge", __name__).Bridge
    globals()[name] = value
    return value
