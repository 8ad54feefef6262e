"""What every workload gets: the host (emulator), the run's settings, long-lived workers, and a progress log."""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench._host import Host, Worker
from bench._measure import Sample, median, summarize
from bench._sdks import SdkArm, resolve


def bridge_available() -> bool:
    """Whether the runtime (`bridge.Bridge`) is in this checkout yet."""
    import bridge

    return hasattr(bridge, "Bridge")


def sqlite_journal_available() -> bool:
    """Whether the durable journal (`bridge.journal.SqliteJournal`) is in this checkout yet."""
    import bridge.journal

    return hasattr(bridge.journal, "SqliteJournal")


def journal_micro_available() -> bool:
    """Whether the journal engineer's microbenchmark (`bench/journal_cost.py`) is in this checkout."""
    return importlib.util.find_spec("bench.journal_cost") is not None


@dataclass
class Context:
    """Settings and shared resources of one run."""

    host: Host
    quick: bool
    reps: int | None = None
    backend: str = "asyncio"
    started: float = field(default_factory=time.perf_counter)
    sdks: dict[str, dict[str, Any]] = field(default_factory=dict)  # per SDK arm: the version its worker imported
    _workers: dict[str, Worker] = field(default_factory=dict)
    _sdk_arms: dict[str, SdkArm | str] | None = None

    def log(self, message: str) -> None:
        """Progress goes to stderr, so stdout carries only the report."""
        print(f"[{time.perf_counter() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def reps_for(self, quick: int, full: int) -> int:
        return self.reps or (quick if self.quick else full)

    def sdk_arm(self, label: str) -> SdkArm | None:
        """Where the SDK arm `label` (`sdk`: the oldest supported SDK, `sdk_newest`) runs; None (noted) if nowhere."""
        if self._sdk_arms is None:
            self._sdk_arms = resolve(self.log)
        arm = self._sdk_arms.get(label)
        if isinstance(arm, str):
            self.sdks.setdefault(label, {"skipped": arm})
            return None
        return arm

    async def worker(self, side: str) -> Worker:
        """The long-lived worker of `side` (started on first use, shared by the single-session workloads).

        `sdk` and `sdk_newest` are the two SDK arms (`bench/_sdks.py`); raises LookupError when `side` is an SDK arm
        that could not be set up.
        """
        if side not in self._workers:
            self._workers[side] = await self.start_worker(side)
        return self._workers[side]

    async def start_worker(self, side: str, **options: Any) -> Worker:
        """A fresh worker of `side` (an SDK arm runs on its own SDK's interpreter); the caller closes it."""
        if side not in ("sdk", "sdk_newest"):
            return await Worker.start(side, self.host.api, backend=self.backend, **options)
        arm = self.sdk_arm(side)
        if arm is None:
            raise LookupError(f"{side}: {self.sdks[side]['skipped']}")
        worker = await Worker.start(
            "sdk", self.host.api, backend=self.backend, python=arm.python, args=arm.worker_args, **options
        )
        self.sdks[side] = {"anthropic": worker.ready.get("anthropic"), "runner": worker.ready.get("runner")}
        return worker

    async def close(self) -> None:
        for worker in self._workers.values():
            await worker.close()
        self._workers.clear()


def comparison(samples: dict[str, list[Sample]], baseline: str, candidate: str, **fields: Any) -> dict[str, Any]:
    """A workload's result: per-arm summaries and the ratio baseline time / candidate time (= throughput ratio)."""
    arms = {label: summarize(s) for label, s in samples.items()}
    base = arms[baseline]["median_s"]
    cand = arms[candidate]["median_s"] if candidate in arms else float("nan")
    ratio = base / cand if cand and cand == cand and base == base else float("nan")
    return {"arms": arms, "ratio": ratio, **fields}


__all__ = ["Context", "bridge_available", "comparison", "journal_micro_available", "median", "sqlite_journal_available"]
