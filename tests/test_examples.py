"""The README's quickstart example runs and prints what the README says."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parent.parent / "examples"


async def test_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/quickstart.py prints the definition, a JSON result, a ToolError and a validation error."""
    namespace = runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="quickstart")
    await namespace["main"]()
    out = capsys.readouterr().out
    assert '"type": "custom"' in out
    assert 'ok: {"order_id":"A-1001","amount_cents":1500,"status":"pending"}' in out
    assert "error: order B-7 does not exist" in out
    assert '- order: unknown field; did you mean "order_id"?' in out


async def test_serve_offline() -> None:
    """examples/serve_offline.py: the README quickstart's Bridge answers a scripted agent over real HTTP."""
    namespace = runpy.run_path(str(EXAMPLES / "serve_offline.py"), run_name="serve_offline")
    reply = await namespace["main"]()
    assert reply.startswith("Refunded 3 late orders: [")


def test_the_readme_quickstart_tool_is_the_one_serve_offline_serves() -> None:
    """The Quickstart's `refund` tool is, character for character, the tool examples/serve_offline.py serves."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    tool_source = "@tool" + quickstart.split("@tool", 1)[1].split("\n\n\n", 1)[0]
    assert tool_source.startswith("@tool(timeout=10, max_concurrency=4)\nasync def refund(")
    assert tool_source in (EXAMPLES / "serve_offline.py").read_text()
    assert "python examples/serve_offline.py" in readme


def test_the_readme_quotes_benchmark_numbers_from_one_generated_run() -> None:
    """Benchmark numbers appear only in the block `bench/run.py --readme` writes: no hand-typed ranges elsewhere,
    in the README or in docs/."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    outside = readme.split("<!-- bench:start -->", 1)[0] + readme.split("<!-- bench:end -->", 1)[1]
    outside += "".join(doc.read_text() for doc in sorted((EXAMPLES.parent / "docs").glob("*.md")))
    for hand_typed in ("0.6–0.7", "16–21%", "26–34%", "p99 overhead 1.9 s"):
        assert hand_typed not in outside


def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves() -> None:
    """The README links each docs/ page, and no relative link in the README or docs/ points at a missing file."""
    import re

    root = EXAMPLES.parent
    readme = (root / "README.md").read_text()
    pages = sorted((root / "docs").glob("*.md"))
    assert pages
    for page in pages:
        assert f"](docs/{page.name})" in readme, f"docs/{page.name} is not linked from the README"
    for source in [root / "README.md", *pages]:
        for target in re.findall(r"\]\(([^)#:]+?)(?:#[^)]*)?\)", source.read_text()):
            assert (source.parent / target).exists(), f"{source.name} links to {target}, which does not exist"


async def test_mcp_server(anyio_backend: str) -> None:
    """examples/mcp_server.py: the toolset served over MCP lists its tools, answers, and refuses a database write."""
    pytest.importorskip("mcp")
    if anyio_backend != "asyncio":
        pytest.skip("the MCP HTTP transport runs on uvicorn, which is asyncio-only")
    namespace = runpy.run_path(str(EXAMPLES / "mcp_server.py"), run_name="mcp_server")
    lines = await namespace["main"]()
    assert lines[0].startswith("tools: order_status, db_describe_source")
    assert lines[1] == 'order_status: {"order_id":7,"status":"shipped"}'
    assert lines[2].startswith("db_query: denied_by_policy")
