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
