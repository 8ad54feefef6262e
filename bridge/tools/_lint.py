"""The lint report: what turning a function into a tool definition changed, dropped or could not express.

`bridge tools` prints it; tests assert on it. A clean report means the model sees exactly what the signature says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LintIssue", "LintReport"]

LintKind = Literal["moved", "lossy", "note"]


@dataclass(frozen=True)
class LintIssue:
    """One finding.

    Attributes:
        path: Where in the input ("days", "addr.zip", "tags[]"); "" for the tool as a whole.
        kind: "moved" (a constraint moved into a description for strict mode), "lossy" (something the model will
            not see or cannot send), or "note" (worth knowing, nothing lost).
        message: What happened, for a person.
    """

    path: str
    kind: LintKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path + ': ' if self.path else ''}{self.message}"


@dataclass(frozen=True)
class LintReport:
    """Everything worth knowing about one tool's definition.

    Attributes:
        tool: The tool name.
        size: Bytes of the definition as JSON (what it costs in every request).
        issues: The findings, in schema order.
    """

    tool: str
    size: int
    issues: tuple[LintIssue, ...] = ()

    @property
    def moved(self) -> tuple[LintIssue, ...]:
        """Constraints moved into descriptions (strict mode)."""
        return tuple(issue for issue in self.issues if issue.kind == "moved")

    @property
    def lossy(self) -> tuple[LintIssue, ...]:
        """Findings where the model sees or can send less than the function accepts."""
        return tuple(issue for issue in self.issues if issue.kind == "lossy")

    @property
    def clean(self) -> bool:
        """True when nothing moved and nothing was lost."""
        return not self.moved and not self.lossy

    def __str__(self) -> str:
        lines = [f"{self.tool}: {self.size:,} bytes" + ("" if self.issues else ", clean")]
        lines.extend(f"  - {issue}" for issue in self.issues)
        return "\n".join(lines)
