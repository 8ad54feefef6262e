"""Standard observability on top of the runtime's call events: Prometheus metrics and OpenTelemetry spans.

Both are call listeners (`Bridge(on_call=...)` / `bridge.add_listener(...)`), so they see exactly what the runtime
publishes and cannot slow or break serving. Their libraries are optional extras, imported when an instance is made:
`pip install 'tool-bridge[metrics]'` for `PrometheusMetrics`, `'tool-bridge[otel]'` for `OpenTelemetrySpans`.
"""

from ._otel import OpenTelemetrySpans
from ._prometheus import PrometheusMetrics

__all__ = ["OpenTelemetrySpans", "PrometheusMetrics"]
