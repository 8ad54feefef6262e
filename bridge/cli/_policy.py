"""The approval plan of bridge.toml's `[approvals]`: a bridge-level policy from `[approvals.tools]` patterns, and the
`ApprovalSettings`. Shared by `bridge run` and `bridge mcp serve` (this module loads no Anthropic SDK)."""

from __future__ import annotations

import fnmatch
from typing import Literal

from .._errors import ConfigError
from ..runtime import ApprovalSettings
from ..tools import ApprovalPolicy, ApprovalRequest
from ._config import ApprovalsSpec

__all__ = ["approval_plan"]


def approval_plan(spec: ApprovalsSpec) -> tuple[ApprovalPolicy | None, ApprovalSettings]:
    """The bridge-level policy of `[approvals.tools]` (first matching pattern wins; no match allows) and the
    `ApprovalSettings` of `[approvals]`.

    Raises:
        ConfigError: A setting is invalid.
    """
    try:
        settings = ApprovalSettings(**spec.settings)
    except ConfigError as exc:
        raise ConfigError([f"approvals: {p}" for p in exc.problems]) from None
    patterns = spec.tools
    if not patterns:
        return None, settings

    def by_pattern(request: ApprovalRequest) -> Literal["allow", "deny", "ask"]:
        for pattern, policy in patterns:
            if fnmatch.fnmatchcase(request.tool_name, pattern):
                return policy
        return "allow"

    return by_pattern, settings
