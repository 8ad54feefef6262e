"""`PrometheusMetrics`: a bridge's calls as Prometheus histograms and counters, via `prometheus-client`.

It is a call listener (`Bridge(on_call=metrics.observe)` or `bridge.add_listener(metrics.observe)`): each `CallEvent`
is timed as it happens, so the histograms need nothing from the runtime beyond its public events.

- `bridge_call_duration_seconds{tool}`: how long the tool ran (finished, failed or timed out).
- `bridge_call_queue_wait_seconds{tool}`: from receiving the call to the tool starting (waiting for its slots).
- `bridge_result_post_seconds{tool}`: from the result being ready to the API accepting it (batching and the POST).
- `bridge_calls_total{tool,outcome}`: outcome is finished, failed, timed_out, cancelled, posted or dropped.
- The snapshot of `stats()` at scrape time: gauges `bridge_sessions`, `bridge_calls_running`, `bridge_calls_queued`,
  `bridge_calls_awaiting_approval`, `bridge_abandoned_threads`, and counters such as `bridge_posts_total`,
  `bridge_reconnects_total` and, in a fleet, `bridge_calls_fenced_total` / `bridge_sessions_fenced_total` /
  `bridge_sessions_handed_over_total` (lease counts are the daemon's `bridge_fleet_*` section).

Each instance has its own registry, so two bridges in one process (or one per test) never collide.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..runtime import CallEvent, CallEventKind

if TYPE_CHECKING:
    from ..runtime import BridgeStats

__all__ = ["PrometheusMetrics"]

# Tool calls run from milliseconds (a lookup) to minutes (a report): buckets from 5 ms to 10 minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_OUTCOMES = {
    CallEventKind.FINISHED: "finished",
    CallEventKind.FAILED: "failed",
    CallEventKind.TIMED_OUT: "timed_out",
    CallEventKind.CANCELLED: "cancelled",
    CallEventKind.POSTED: "posted",
    CallEventKind.DROPPED: "dropped",
}
_ANSWERED = (CallEventKind.FINISHED, CallEventKind.FAILED, CallEventKind.TIMED_OUT, CallEventKind.CANCELLED)
_GAUGES = {
    "sessions": ("bridge_sessions", "Sessions being served."),
    "running": ("bridge_calls_running", "Calls whose tool is running."),
    "queued": ("bridge_calls_queued", "Calls waiting for a slot."),
    "awaiting_approval": ("bridge_calls_awaiting_approval", "Calls parked until someone approves or denies them."),
    "abandoned_threads": ("bridge_abandoned_threads", "Sync tool threads still running after their call ended."),
}
_COUNTERS = {
    "received": ("bridge_calls_received", "Calls taken in."),
    "posts": ("bridge_posts", "Result POSTs the API accepted (each may carry several results)."),
    "post_retries": ("bridge_post_retries", "Result POSTs retried after a transient failure."),
    "duplicates_prevented": ("bridge_duplicates_prevented", "Results not re-posted: the history had them."),
    "reconnects": ("bridge_reconnects", "Event stream reconnections."),
    "reconciled": ("bridge_calls_reconciled", "Calls the stream skipped and the history sweep found."),
    "fenced": ("bridge_calls_fenced", "Calls left to another fleet member: this process lost their session's lease."),
    "sessions_fenced": ("bridge_sessions_fenced", "Sessions stopped at once because their lease was lost."),
    "handed_over": ("bridge_sessions_handed_over", "Sessions handed over at an idle point to rebalance the fleet."),
}


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ImportError("Prometheus metrics need prometheus-client: pip install 'tool-bridge[metrics]'") from None
    return prometheus_client


class PrometheusMetrics:
    """Histograms and counters of one bridge's calls, and its `stats()` at scrape time, in their own registry.

    Args:
        stats: Returns the bridge's current `BridgeStats` (e.g. `bridge.stats`); read on every scrape.
        buckets: Histogram buckets, in seconds.

    Raises:
        ImportError: prometheus-client is not installed (the message names the extra to install).
    """

    def __init__(
        self, stats: Callable[[], BridgeStats] | None = None, *, buckets: tuple[float, ...] = DURATION_BUCKETS
    ) -> None:
        prometheus = _client()
        self.registry = prometheus.CollectorRegistry(auto_describe=True)
        self.stats = stats
        labels = ["tool"]
        self.call_duration = prometheus.Histogram(
            "bridge_call_duration_seconds", "How long tools ran.", labels, buckets=buckets, registry=self.registry
        )
        self.queue_wait = prometheus.Histogram(
            "bridge_call_queue_wait_seconds",
            "From receiving a call to its tool starting.",
            labels,
            buckets=buckets,
            registry=self.registry,
        )
        self.post_latency = prometheus.Histogram(
            "bridge_result_post_seconds",
            "From a result being ready to the API accepting it.",
            labels,
            buckets=buckets,
            registry=self.registry,
        )
        self.calls = prometheus.Counter(
            "bridge_calls", "Calls by outcome.", ["tool", "outcome"], registry=self.registry
        )
        self.registry.register(_StatsCollector(self))
        self._received: dict[tuple[str, str], float] = {}
        self._answered: dict[tuple[str, str], float] = {}

    def __repr__(self) -> str:
        return f"PrometheusMetrics(in_flight={len(self._received)})"

    def observe(self, event: CallEvent) -> None:
        """The call listener: time and count one call event."""
        now = time.monotonic()
        key = (event.session_id, event.tool_use_id)
        if (outcome := _OUTCOMES.get(event.kind)) is not None:
            self.calls.labels(event.tool, outcome).inc()
        if event.kind is CallEventKind.RECEIVED:
            self._received[key] = now
        elif event.kind is CallEventKind.STARTED:
            if (since := self._received.pop(key, None)) is not None:
                self.queue_wait.labels(event.tool).observe(now - since)
        elif event.kind in _ANSWERED:
            self._received.pop(key, None)
            self._answered[key] = now
            if event.duration is not None and event.kind is not CallEventKind.CANCELLED:
                self.call_duration.labels(event.tool).observe(event.duration)
        elif event.kind is CallEventKind.POSTED:
            if (since := self._answered.pop(key, None)) is not None:
                self.post_latency.labels(event.tool).observe(now - since)
        elif event.kind is CallEventKind.DROPPED:
            self._received.pop(key, None)
            self._answered.pop(key, None)

    def add_section(self, name: str, read: Callable[[], Any]) -> None:
        """Also expose, at each scrape, the numbers `read()` returns (a dataclass or a mapping).

        Each becomes `bridge_<name>_<key>`: a counter where the key ends in `_total`, a gauge otherwise. The daemon
        adds the fleet's leases, the webhook receiver and the rate budget this way, so this module knows none of them.
        """
        self.registry.register(_SectionCollector(name, read))

    def exposition(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format, and its content type (what `/metrics` serves)."""
        prometheus = _client()
        return prometheus.generate_latest(self.registry), prometheus.CONTENT_TYPE_LATEST


class _StatsCollector:
    """`BridgeStats` read at scrape time: gauges for what is now, counters for what the runtime counts."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return list(self._families(None))

    def collect(self) -> Iterator[Any]:
        stats = self.metrics.stats() if self.metrics.stats is not None else None
        yield from self._families(stats)

    def _families(self, stats: BridgeStats | None) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for field, (name, text) in _GAUGES.items():
            gauge = GaugeMetricFamily(name, text)
            if stats is not None:
                gauge.add_metric([], float(getattr(stats, field)))
            yield gauge
        for field, (name, text) in _COUNTERS.items():
            counter = CounterMetricFamily(name, text)
            if stats is not None:
                counter.add_metric([], float(getattr(stats, field)))
            yield counter


class _SectionCollector:
    """A named group of numbers read at scrape time (see `PrometheusMetrics.add_section`)."""

    def __init__(self, name: str, read: Callable[[], Any]) -> None:
        self.name = name
        self.read = read

    def describe(self) -> list[Any]:
        return []  # the keys are known only once read; nothing to check against other collectors

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        values = self.read()
        if dataclasses.is_dataclass(values) and not isinstance(values, type):
            values = dataclasses.asdict(values)
        for key, value in dict(values).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            metric = f"bridge_{self.name}_{key}"
            if key.endswith("_total"):
                family: Any = CounterMetricFamily(metric.removesuffix("_total"), f"{self.name}: {key}")
            else:
                family = GaugeMetricFamily(metric, f"{self.name}: {key}")
            family.add_metric([], float(value))
            yield family
