"""`bridge run --otel` (or `[telemetry] otel = true`): a tracer provider configured from the standard `OTEL_*` vars.

The library only emits spans through `opentelemetry-api` (`bridge.telemetry.OpenTelemetrySpans`); exporting them
needs the OpenTelemetry SDK and an exporter, which an application usually configures itself. The daemon is its own
application, so it does what the OpenTelemetry docs describe, with the SDK's own readers of the environment:

- `OTEL_TRACES_EXPORTER`: `otlp` (default), `console` (spans printed on stdout, for a first try) or `none`.
- `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (default) or `grpc`.
- Endpoint, headers, timeouts, sampler, batch sizes, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`: read by the
  SDK's `TracerProvider`, `Resource`, `BatchSpanProcessor` and the OTLP exporter themselves.

Anything missing fails before serving starts, with the `pip install` that fixes it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError

__all__ = ["INSTALL", "configure_tracing"]

INSTALL = "pip install 'tool-bridge[otlp]'"
"""The SDK and the OTLP/HTTP exporter (`opentelemetry-sdk`, `opentelemetry-exporter-otlp-proto-http`)."""

_OTLP = "opentelemetry.exporter.otlp.proto"
_EXPORTERS = {  # protocol -> (module, package)
    "http/protobuf": (f"{_OTLP}.http.trace_exporter", "opentelemetry-exporter-otlp-proto-http"),
    "grpc": (f"{_OTLP}.grpc.trace_exporter", "opentelemetry-exporter-otlp-proto-grpc"),
}


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"--otel needs {package}, which is not installed: {INSTALL} (or pip install {package})"
        ) from None


def configure_tracing(environ: Mapping[str, str]) -> Any:
    """A `TracerProvider` exporting as the environment says, ready for `OpenTelemetrySpans(provider)`.

    Args:
        environ: The process environment (the CLI passes `os.environ`; the SDK also reads it directly).

    Returns:
        The provider; call its `shutdown()` on exit so the last spans are flushed.

    Raises:
        ConfigError: The SDK or the chosen exporter is not installed (the message names the install), or an
            `OTEL_*` value is not one this daemon supports.
    """
    sdk_trace = _import("opentelemetry.sdk.trace", "opentelemetry-sdk")
    export = _import("opentelemetry.sdk.trace.export", "opentelemetry-sdk")
    resources = _import("opentelemetry.sdk.resources", "opentelemetry-sdk")
    exporter_name = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, which win over this default name.
    provider = sdk_trace.TracerProvider(resource=resources.Resource.create({"service.name": "tool-bridge"}))
    if exporter_name == "none":
        return provider
    if exporter_name == "console":
        provider.add_span_processor(export.SimpleSpanProcessor(export.ConsoleSpanExporter()))
        return provider
    if exporter_name != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter_name!r} is not supported by --otel: otlp, console or none")
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = (protocol or "http/protobuf").strip()
    if protocol not in _EXPORTERS:
        raise ConfigError(f"OTLP protocol {protocol!r} is not supported by --otel: use {' or '.join(_EXPORTERS)}")
    exporter = _import(*_EXPORTERS[protocol]).OTLPSpanExporter()  # endpoint, headers...: from OTEL_EXPORTER_OTLP_*
    provider.add_span_processor(export.BatchSpanProcessor(exporter))
    return provider
