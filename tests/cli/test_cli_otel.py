"""`bridge run --otel` / `[telemetry] otel = true`: a tracer provider from the OTEL_* environment, or a clear error."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from bridge_cli_support import SAMPLE
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bridge import ConfigError
from bridge.cli._config import parse_config
from bridge.cli._otel import configure_tracing
from bridge.testing import AgentTurn, Emulator

HTTP_EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
GRPC_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"


class FakeOTLPExporter(SpanExporter):
    """Stands for the OTLP exporter package: keeps what it is asked to export."""

    exported: ClassVar[list[ReadableSpan]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        FakeOTLPExporter.exported.extend(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def fake_otlp(monkeypatch: pytest.MonkeyPatch) -> type[FakeOTLPExporter]:
    """Install a stand-in OTLP/HTTP exporter module (the real package is not among the dev dependencies)."""
    module = types.ModuleType(HTTP_EXPORTER)
    module.OTLPSpanExporter = FakeOTLPExporter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, HTTP_EXPORTER, module)
    FakeOTLPExporter.exported = []
    return FakeOTLPExporter


def processors(provider: Any) -> list[Any]:
    return list(provider._active_span_processor._span_processors)


def test_the_default_exports_over_otlp_http_in_batches(fake_otlp: type[FakeOTLPExporter]) -> None:
    """No OTEL_* set: an SDK TracerProvider, a BatchSpanProcessor, the OTLP/HTTP exporter, service tool-bridge."""
    provider = configure_tracing({})
    assert isinstance(provider, TracerProvider)
    (processor,) = processors(provider)
    assert type(processor).__name__ == "BatchSpanProcessor"
    assert provider.resource.attributes["service.name"] == "tool-bridge"
    provider.shutdown()


def test_the_console_exporter_needs_no_otlp_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_TRACES_EXPORTER=console prints spans, even with no OTLP exporter installed."""
    monkeypatch.setitem(sys.modules, HTTP_EXPORTER, None)
    provider = configure_tracing({"OTEL_TRACES_EXPORTER": "console"})
    (processor,) = processors(provider)
    assert type(processor.span_exporter).__name__ == "ConsoleSpanExporter"
    provider.shutdown()


@pytest.mark.parametrize(
    ("environ", "missing", "package"),
    [
        ({}, HTTP_EXPORTER, "opentelemetry-exporter-otlp-proto-http"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, GRPC_EXPORTER, "opentelemetry-exporter-otlp-proto-grpc"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "opentelemetry.sdk.trace", "opentelemetry-sdk"),
    ],
)
def test_what_is_missing_is_named_with_the_install(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], missing: str, package: str
) -> None:
    """Without the SDK or the chosen exporter: a ConfigError naming the package and the extra to install."""
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ConfigError) as caught:
        configure_tracing(environ)
    assert package in str(caught.value)
    assert "pip install 'tool-bridge[otlp]'" in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin' is not supported"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTLP protocol 'http/json' is not supported"),
    ],
)
def test_unsupported_settings_are_refused(environ: dict[str, str], message: str) -> None:
    """An exporter or protocol the daemon cannot set up is a ConfigError, not a silent no-op."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        configure_tracing(environ)


def test_the_telemetry_table_is_checked() -> None:
    """`[telemetry] otel = true` is read; a non-boolean or an unknown key is listed as a problem."""
    assert parse_config({"telemetry": {"otel": True}}, {}).otel is True
    assert parse_config({}, {}).otel is False
    with pytest.raises(ConfigError) as caught:
        parse_config({"telemetry": {"otel": "yes", "otle": 1}}, {})
    problems = "\n".join(caught.value.problems)
    assert "telemetry.otel: must be true or false, got 'yes'" in problems
    assert "telemetry.otle: unknown key" in problems


def test_run_otel_without_the_exporter_exits_3_naming_the_install(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`bridge run --otel` with no OTLP exporter installed stops before serving, telling what to pip install."""
    monkeypatch.setitem(sys.modules, HTTP_EXPORTER, None)
    done = cli("run", SAMPLE, "--session", "s", "--otel", "--journal", "memory", env={"ANTHROPIC_API_KEY": "k"})
    assert done.returncode == 3
    assert "pip install 'tool-bridge[otlp]'" in done.stderr
    config = tmp_path / "bridge.toml"
    config.write_text("[telemetry]\notel = true\n")
    done = cli(
        "run", SAMPLE, "--session", "s", "--config", str(config), "--journal", "memory", env={"ANTHROPIC_API_KEY": "k"}
    )
    assert done.returncode == 3
    assert "opentelemetry-exporter-otlp-proto-http" in done.stderr


async def add_then_end(agent: AgentTurn) -> None:
    """Call `add` twice, reply with the sums, then end the session (so `bridge run` exits)."""
    results = await agent.call_tools([("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})])
    await agent.say(" ".join(r.text for r in results))
    await agent.terminate()


def test_run_otel_exports_call_and_post_spans(cli: Any, fake_otlp: type[FakeOTLPExporter]) -> None:
    """`bridge run --otel` exports an execute_tool span per call and a POST span per result POST, flushed at exit."""
    with Emulator(script=add_then_end) as api:
        client = api.sync_client()
        from bridge.cli._target import load_target

        agent = client.beta.agents.create(name="o", model="claude-opus-4-7", tools=load_target(SAMPLE).definitions())
        env = client.beta.environments.create(name="e", config={"type": "cloud"})
        session = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]
        )
        environ = {"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": api.api_key}
        done = cli("run", SAMPLE, "--session", session.id, "--otel", "--journal", "memory", env=environ)
        assert done.returncode == 0, done.stderr
        anyio.run(partial(api.control.wait_status, session.id, "terminated", timeout=10))
    names = [span.name for span in fake_otlp.exported]
    assert names.count("execute_tool add") == 2
    posts = [span for span in fake_otlp.exported if span.name == "POST user.custom_tool_result"]
    assert posts
    assert all(span.attributes and span.attributes["gen_ai.conversation.id"] == session.id for span in posts)
    assert sum(int(span.attributes["tool_bridge.post.results"]) for span in posts if span.attributes) == 2
