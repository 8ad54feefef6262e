"""The definition layer: a typed function -> a Claude-ready tool definition, validated input, shaped results.

Knows nothing about sessions or HTTP. `bridge.runtime` and `bridge.cli` import these names from here, never from the
private modules.
"""

from ._approval import Approval, ApprovalPolicy, ApprovalRequest, Verdict, check_policy, evaluate_policy, is_allow
from ._content import CallResult, ContentBlock, ToolResult, document, image
from ._context import ToolContext
from ._decorator import ToolOptions, tool
from ._lint import LintIssue, LintReport
from ._tool import Tool
from ._toolset import Toolset, ToolSource

__all__ = [
    "Approval",
    "ApprovalPolicy",
    "ApprovalRequest",
    "CallResult",
    "ContentBlock",
    "LintIssue",
    "LintReport",
    "Tool",
    "ToolContext",
    "ToolOptions",
    "ToolResult",
    "ToolSource",
    "Toolset",
    "Verdict",
    "check_policy",
    "document",
    "evaluate_policy",
    "image",
    "is_allow",
    "tool",
]
