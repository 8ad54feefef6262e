"""Standard observability over real serving: Prometheus metrics parsed by prometheus-client, OTel spans exported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from bridge import Bridge, PostEvent, PostOutcome, ToolError, Toolset, tool
from bridge.cli._health import HealthServer
from bridge.telemetry import OpenTelemetrySpans, PrometheusMetrics
from bridge.testing import AgentTurn, Emulator

pytestmark = pytest.mark.anyio


@tool
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


@tool
async def refuse(reason: str) -> str:
    """Always refuse.

    Args:
        reason: Why.
    """
    raise ToolError(reason)


TOOLS = Toolset([add, refuse])


async def two_calls(agent: AgentTurn) -> None:
    """One call that works and one that fails, in one turn."""
    results = await agent.call_tools([("add", {"a": 1, "b": 2}), ("refuse", {"reason": "no"})])
    await agent.say(" ".join(r.text for r in results))


async def serve_one_turn(attach: Callable[[Bridge], None], after: Callable[[Bridge], Any] | None = None) -> str:
    """Serve one scripted turn over real HTTP, `attach`ing listeners first; returns the session id."""
    async with Emulator(script=two_calls) as api:
        client = api.client()
        agent = await client.beta.agents.create(name="t", model="claude-opus-4-7", tools=TOOLS.definitions())
        env = await client.beta.environments.create(name="e")
        session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        async with Bridge(client, TOOLS) as bridge:
            attach(bridge)
            assert await bridge.ask(session.id, "go") == "3 no"
            if after is not None:
                await after(bridge)
        api.control.invariants(session.id).assert_ok()
    return session.id


async def scrape(port: int) -> str:
    """GET /metrics over TCP, as a Prometheus server would."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while True:
                data += await stream.receive()
        except anyio.EndOfStream:
            pass
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK")
    assert "Content-Type: text/plain; version=" in head
    return body


async def test_metrics_endpoint_parses_with_prometheus_client_and_has_real_histograms() -> None:
    """/metrics, scraped over TCP, parses with prometheus_client: duration/queue/post histograms, outcome counters."""
    scraped: list[str] = []
    made: list[PrometheusMetrics] = []

    def attach(bridge: Bridge) -> None:
        made.append(PrometheusMetrics(bridge.stats))
        bridge.add_listener(made[0].observe)

    async def after(bridge: Bridge) -> None:
        async with anyio.create_task_group() as tg:
            port = await tg.start(HealthServer(made[0].exposition).serve)
            scraped.append(await scrape(port))
            tg.cancel_scope.cancel()

    await serve_one_turn(attach, after)
    families = {family.name: family for family in text_string_to_metric_families(scraped[0])}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert families["bridge_call_duration_seconds"].type == "histogram"
    assert samples[("bridge_call_duration_seconds_count", (("tool", "add"),))] == 1
    assert samples[("bridge_call_duration_seconds_bucket", (("le", "+Inf"), ("tool", "refuse")))] == 1
    assert samples[("bridge_call_queue_wait_seconds_count", (("tool", "add"),))] == 1
    assert samples[("bridge_result_post_seconds_count", (("tool", "refuse"),))] == 1
    assert samples[("bridge_calls_total", (("outcome", "finished"), ("tool", "add")))] == 1
    assert samples[("bridge_calls_total", (("outcome", "failed"), ("tool", "refuse")))] == 1
    assert samples[("bridge_calls_total", (("outcome", "posted"), ("tool", "refuse")))] == 1
    assert samples[("bridge_calls_received_total", ())] == 2
    assert families["bridge_sessions"].type == "gauge"
    assert samples[("bridge_calls_running", ())] == 0


async def test_each_tool_call_is_one_execute_tool_span_with_genai_attributes() -> None:
    """With the SDK's in-memory exporter: one `execute_tool` span per call, GenAI attributes, errors typed."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = OpenTelemetrySpans(provider)

    def attach(bridge: Bridge) -> None:
        bridge.add_listener(spans.observe)

    session_id = await serve_one_turn(attach)
    finished = {span.name: span for span in exporter.get_finished_spans()}
    assert sorted(finished) == ["execute_tool add", "execute_tool refuse"]
    ok, failed = finished["execute_tool add"], finished["execute_tool refuse"]
    assert ok.kind is SpanKind.INTERNAL
    assert ok.attributes is not None
    assert failed.attributes is not None
    assert ok.attributes["gen_ai.operation.name"] == "execute_tool"
    assert ok.attributes["gen_ai.tool.name"] == "add"
    assert str(ok.attributes["gen_ai.tool.call.id"]).startswith("sevt_")
    assert ok.attributes["gen_ai.conversation.id"] == failed.attributes["gen_ai.conversation.id"] == session_id
    assert "error.type" not in ok.attributes
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.attributes["error.type"] == "tool_error"
    assert failed.status.status_code is StatusCode.ERROR
    assert ok.start_time is not None
    assert ok.end_time is not None
    assert ok.start_time <= ok.end_time


async def test_each_result_post_is_one_span_linked_to_the_calls_it_answered() -> None:
    """One `POST user.custom_tool_result` span per POST: session, results, ids, outcome, retries; links to the calls."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = OpenTelemetrySpans(provider)

    def attach(bridge: Bridge) -> None:
        bridge.add_listener(spans.observe)
        bridge.add_post_listener(spans.observe_post)

    session_id = await serve_one_turn(attach)
    finished = exporter.get_finished_spans()
    calls = {span.context.span_id: span for span in finished if span.name.startswith("execute_tool ")}
    posts = [span for span in finished if span.name == "POST user.custom_tool_result"]
    assert len(calls) == 2
    assert posts
    posted_ids: list[str] = []
    for post in posts:
        assert post.kind is SpanKind.CLIENT
        assert post.attributes is not None
        assert post.attributes["gen_ai.conversation.id"] == session_id
        assert post.attributes["tool_bridge.post.outcome"] == "posted"
        assert post.attributes["tool_bridge.post.retries"] == 0
        assert post.attributes["tool_bridge.post.found"] == 0
        ids = list(post.attributes["tool_bridge.post.tool_call_ids"])  # type: ignore[arg-type]
        assert post.attributes["tool_bridge.post.results"] == len(ids)
        linked = [calls[link.context.span_id] for link in post.links]
        assert sorted(str(span.attributes["gen_ai.tool.call.id"]) for span in linked if span.attributes) == sorted(ids)
        assert post.status.status_code is StatusCode.UNSET
        assert post.start_time is not None
        assert post.end_time is not None
        assert post.start_time <= post.end_time
        posted_ids += ids
    call_ids = sorted(str(span.attributes["gen_ai.tool.call.id"]) for span in calls.values() if span.attributes)
    assert sorted(posted_ids) == call_ids
    assert repr(spans) == "OpenTelemetrySpans(open=0, awaiting_post=0)"


async def test_a_failed_post_span_is_an_error_with_its_outcome() -> None:
    """A rejected POST's span has `error.type` = rejected and an ERROR status carrying the API's reason."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = OpenTelemetrySpans(provider)
    spans.observe_post(PostEvent("sesn_1", ("sevt_1",), PostOutcome.REJECTED, 2, 0.25, detail="400 invalid content"))
    (post,) = exporter.get_finished_spans()
    assert post.attributes is not None
    assert post.attributes["error.type"] == "rejected"
    assert post.attributes["tool_bridge.post.retries"] == 2
    assert post.status.status_code is StatusCode.ERROR
    assert post.status.description == "400 invalid content"
    assert post.start_time is not None
    assert post.end_time is not None
    assert post.end_time - post.start_time == 250_000_000
    assert list(post.links) == []
