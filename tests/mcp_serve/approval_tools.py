"""Tools under approval policies, served by the MCP approval tests (in-process, and as `...approval_tools.py:toolset`
from a `bridge mcp serve` subprocess). `runs` reports which gated tools ran, so a test over stdio sees that a denied
call never did."""

from __future__ import annotations

from collections import Counter

from bridge import Approval, ApprovalRequest, Toolset, tool

ran: Counter[str] = Counter()


def greet(name: str) -> str:
    """Greet someone (no policy).

    Args:
        name: Who.
    """
    return f"hello {name}"


@tool(approval="allow")
def wave() -> str:
    """Wave (approval "allow")."""
    ran["wave"] += 1
    return "waved"


@tool(approval=Approval.deny("launches need a change ticket"))
def launch(target: str) -> str:
    """Launch something (always denied).

    Args:
        target: What to launch.
    """
    ran["launch"] += 1
    return f"launched {target}"


@tool(approval="ask")
def open_door(door: int) -> str:
    """Open a door (asks first).

    Args:
        door: Which door.
    """
    ran["open_door"] += 1
    return f"door {door} is open"


async def small_transfers_only(request: ApprovalRequest) -> Approval:
    """Allow transfers up to 100; deny larger ones, naming what the policy saw."""
    cents = request.input["cents"]
    if cents <= 100:
        return Approval.allow()
    seen = f"tool={request.tool_name} session={request.session_id} call={request.call_id} thread={request.thread_id}"
    return Approval.deny(f"{cents} is over the limit ({seen}, metadata={dict(request.metadata)})")


@tool(approval=small_transfers_only)
def transfer(cents: int) -> str:
    """Transfer money (a policy function decides).

    Args:
        cents: How much.
    """
    ran["transfer"] += 1
    return f"transferred {cents}"


def runs() -> dict[str, int]:
    """How many times each gated tool ran in this process."""
    return dict(ran)


toolset = Toolset([greet, wave, launch, open_door, transfer, runs], name="mcp-approvals")
