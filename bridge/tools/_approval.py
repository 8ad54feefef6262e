"""Approval policies: whether a call may run, must not, or waits for a person to decide.

A policy is `"allow"`, `"deny"`, `"ask"`, an `Approval`, or a function (sync or async) of an `ApprovalRequest`
returning one of those. It is set on a tool (`@tool(approval=...)`), on a toolset (`Toolset(..., approval=...)`) or
on the bridge (`Bridge(approval=...)`); the tool's wins, then the innermost toolset's, then the bridge's. No policy
anywhere means allow, at no cost: nothing is evaluated and nothing extra is journaled.

The policy sees the *validated* input: a call whose input does not fit the schema is answered with the validation
error without asking anyone (it could not run anyway). A policy function that raises or returns something else
denies the call (fail closed); the exception is logged with a reference, never shown to the model.
"""

from __future__ import annotations

import enum
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._errors import DefinitionError

if TYPE_CHECKING:
    from ._tool import Tool

__all__ = ["Approval", "ApprovalPolicy", "ApprovalRequest", "Verdict", "check_policy", "evaluate_policy", "is_allow"]

logger = logging.getLogger("bridge.approvals")


class Verdict(enum.StrEnum):
    """What a policy says about one call."""

    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


@dataclass(frozen=True)
class Approval:
    """A policy's answer for one call; build it with `Approval.allow()`, `Approval.deny(reason)` or `Approval.ask()`.

    Attributes:
        verdict: Allow, deny or ask.
        reason: Why a call is denied; the model reads it ("denied by policy: <reason>").
    """

    verdict: Verdict
    reason: str | None = None

    @classmethod
    def allow(cls) -> Approval:
        """Run the call."""
        return cls(Verdict.ALLOW)

    @classmethod
    def deny(cls, reason: str | None = None) -> Approval:
        """Answer the call with an `is_error` result naming `reason`; the tool does not run."""
        return cls(Verdict.DENY, reason)

    @classmethod
    def ask(cls) -> Approval:
        """Park the call until someone approves or denies it (or its approval times out)."""
        return cls(Verdict.ASK)


@dataclass(frozen=True)
class ApprovalRequest:
    """What a policy function sees about one call.

    Attributes:
        tool: The tool the agent called.
        input: The validated input, by parameter name (read-only).
        session_id: The session the call belongs to. Over MCP (`bridge mcp serve`): the `Mcp-Session-Id` of a
            streamable-HTTP session, or None over stdio (no MCP session there).
        call_id: The `agent.custom_tool_use` event id: the id to approve or deny it by. Over MCP: the JSON-RPC id
            of the `tools/call` request.
        thread_id: The sub-agent thread that made the call, if any.
        metadata: The session's metadata (read-only); empty over MCP.
    """

    tool: Tool
    input: Mapping[str, Any]
    session_id: str | None
    call_id: str
    thread_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def tool_name(self) -> str:
        """The name the agent called the tool by."""
        return self.tool.name


PolicyResult: TypeAlias = Approval | Literal["allow", "deny", "ask"]
ApprovalPolicy: TypeAlias = (
    Literal["allow", "deny", "ask"]
    | Approval
    | Callable[[ApprovalRequest], PolicyResult]
    | Callable[[ApprovalRequest], Awaitable[PolicyResult]]
)
"""`"allow"`, `"deny"`, `"ask"`, an `Approval`, or a function (sync or async) of an `ApprovalRequest` returning one."""


def check_policy(policy: object, where: str = "approval") -> ApprovalPolicy | None:
    """Return `policy` if it is a valid approval policy (or None), else raise at registration.

    Raises:
        DefinitionError: With the forms a policy may take.
    """
    if policy is None or isinstance(policy, Approval) or callable(policy):
        return policy
    if isinstance(policy, str) and policy in Verdict.__members__.values():
        return policy  # type: ignore[return-value]
    raise DefinitionError(
        f"{where}={policy!r} is not an approval policy: use 'allow', 'deny', 'ask', Approval.deny('why'), or a "
        "function (sync or async) taking an ApprovalRequest and returning one of those"
    )


def is_allow(policy: ApprovalPolicy | None) -> bool:
    """True when the policy lets every call run without evaluating anything (the fast path)."""
    return policy is None or policy == "allow" or (isinstance(policy, Approval) and policy.verdict is Verdict.ALLOW)


def _as_approval(value: object) -> Approval | None:
    if isinstance(value, Approval):
        return value
    if isinstance(value, str) and value in Verdict.__members__.values():
        return Approval(Verdict(value))
    return None


async def evaluate_policy(policy: ApprovalPolicy | None, request: ApprovalRequest) -> Approval:
    """The policy's answer for one call; a failing or malformed policy denies (fail closed).

    A sync policy function runs on the event loop: keep it quick, or make it async.
    """
    if policy is None:
        return Approval.allow()
    fixed = _as_approval(policy)
    if fixed is not None or not callable(policy):
        return fixed or Approval.deny("the approval policy is not valid")
    ref = secrets.token_hex(4)
    try:
        value: Any = policy(request)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        logger.error("approval policy for %s failed (ref %s)", request.tool_name, ref, exc_info=exc)
        return Approval.deny(f"the approval policy failed (ref {ref})")
    answer = _as_approval(value)
    if answer is None:
        logger.error("approval policy for %s returned %r, not an Approval (ref %s)", request.tool_name, value, ref)
        return Approval.deny(f"the approval policy gave no valid answer (ref {ref})")
    return answer
