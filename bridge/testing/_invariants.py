"""The invariant checker: what happened to every custom tool call, so tests can assert DESIGN.md's I1-I6 directly.

I1 (no lost result) is `unanswered` empty; I3 (one posted result) is `duplicates` empty; results a bridge posts for
calls that were interrupted or whose session ended are `late` (I6 says a stopped bridge posts nothing); results for
ids the session never issued are `unknown_result_ids`; I5 (liveness) is bounded by `max_time_to_answer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._session import Session

__all__ = ["CallReport", "InvariantReport"]


@dataclass(frozen=True)
class CallReport:
    """One custom tool call.

    Attributes:
        tool_use_id: The `agent.custom_tool_use` event id.
        session_id: Its session.
        thread_id: Its sub-agent thread, None for the primary thread.
        name: Tool name.
        state: `pending` (no result yet), `answered`, or `abandoned` (interrupted, or its thread or session ended
            before a result arrived).
        results: How many results were posted for it (duplicates and late ones included, rejected ones too).
        late_results: Results that arrived after the call was abandoned.
        rejected_results: Results the emulator answered with an error (per `Behavior`), counted all the same.
        time_to_answer: Seconds from the call's emission to its first result, None if none.
        abandoned_reason: Why an abandoned call was abandoned.
    """

    tool_use_id: str
    session_id: str
    thread_id: str | None
    name: str
    state: str
    results: int
    late_results: int
    rejected_results: int
    time_to_answer: float | None
    abandoned_reason: str | None


@dataclass(frozen=True)
class InvariantReport:
    """Per-call facts for one session or all of them, and the violations derived from them."""

    calls: tuple[CallReport, ...]
    unknown_result_ids: tuple[str, ...]

    @classmethod
    def of(cls, sessions: Iterable[Session]) -> InvariantReport:
        """Snapshot the calls of `sessions`."""
        calls: list[CallReport] = []
        unknown: list[str] = []
        for session in sessions:
            unknown += session.unknown_results
            for call in session.calls.values():
                accepted = [r for r in call.results if not r.rejected and not r.late]
                first = accepted[0].at - call.emitted_at if accepted else None
                late = sum(1 for r in call.results if r.late)
                calls.append(
                    CallReport(
                        call.id,
                        session.id,
                        call.thread_id,
                        call.name,
                        call.state,
                        len(call.results),
                        late,
                        sum(1 for r in call.results if r.rejected),
                        first,
                        call.abandoned_reason,
                    )
                )
        return cls(tuple(calls), tuple(unknown))

    def results_of(self, tool_use_id: str) -> int:
        """How many results were posted for one call (0 for an id the session never issued)."""
        return next((c.results for c in self.calls if c.tool_use_id == tool_use_id), 0)

    @property
    def unanswered(self) -> tuple[str, ...]:
        """Calls still waiting for a result (I1 violations once the run is over)."""
        return tuple(c.tool_use_id for c in self.calls if c.state == "pending")

    @property
    def abandoned(self) -> tuple[str, ...]:
        """Calls that ended without a result because of an interrupt or the end of their thread or session."""
        return tuple(c.tool_use_id for c in self.calls if c.state == "abandoned" and c.results == c.late_results)

    @property
    def duplicates(self) -> dict[str, int]:
        """Calls that got more than one result, with how many they got (I3 violations)."""
        return {c.tool_use_id: c.results for c in self.calls if c.results > 1}

    @property
    def late(self) -> dict[str, int]:
        """Calls that got results after they were abandoned, with how many (I6 violations)."""
        return {c.tool_use_id: c.late_results for c in self.calls if c.late_results}

    @property
    def time_to_answer(self) -> dict[str, float]:
        """Seconds from each answered call's emission to its first result."""
        return {c.tool_use_id: c.time_to_answer for c in self.calls if c.time_to_answer is not None}

    @property
    def max_time_to_answer(self) -> float:
        """The slowest answer, in seconds (0.0 without answered calls)."""
        return max(self.time_to_answer.values(), default=0.0)

    @property
    def ok(self) -> bool:
        """No unanswered call, no duplicate, no late result and no result for an unknown id."""
        return not (self.unanswered or self.duplicates or self.late or self.unknown_result_ids)

    def summary(self) -> str:
        """One line per kind of violation, or `ok`."""
        lines = [
            f"{len(self.calls)} calls, {len(self.time_to_answer)} answered, max time to answer "
            f"{self.max_time_to_answer:.3f}s"
        ]
        for label, value in (
            ("unanswered", list(self.unanswered)),
            ("duplicates", self.duplicates),
            ("late", self.late),
            ("unknown result ids", list(self.unknown_result_ids)),
        ):
            if value:
                lines.append(f"{label}: {value}")
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise AssertionError describing every violation, if any."""
        if not self.ok:
            raise AssertionError("emulator invariants violated:\n" + self.summary())
