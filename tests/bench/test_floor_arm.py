"""The floor arm for real: a worker process answering a turn through the SDK over HTTP, one POST, no tools."""

from __future__ import annotations

import anyio
import pytest

from bench._host import Worker, open_host
from bench._measure import Arm, one_turn
from bench.turns import over_floor

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """asyncio: the benchmark driver's loop."""
    return "asyncio"


async def test_floor_answers_a_whole_turn_in_one_post() -> None:
    """The floor worker answers every call of a turn, none as an error, with one result POST and no history read."""
    api, host = await open_host()
    try:
        worker = await Worker.start("floor", api)
        try:
            with anyio.fail_after(60):
                sample = await one_turn(host, Arm("floor", worker), {"calls": 6, "tool": "noop"})
                sleepy = await one_turn(host, Arm("floor", worker), {"calls": 3, "tool": "sleep"})
        finally:
            await worker.close()
    finally:
        with anyio.CancelScope(shield=True):
            await api.__aexit__(None, None, None)
    assert (sample.calls, sample.unanswered, sample.errors, sample.notes) == (6, 0, 0, [])
    assert (sample.result_posts, sample.history_gets) == (1, 0)
    assert (sleepy.calls, sleepy.unanswered, sleepy.result_posts) == (3, 0, 1)


def test_over_floor_is_bridge_time_over_floor_time() -> None:
    """bridge/floor divides the medians, and is NaN when the floor arm did not run."""
    assert over_floor({"bridge": {"median_s": 0.3}, "floor": {"median_s": 0.25}}) == pytest.approx(1.2)
    ratio = over_floor({"bridge": {"median_s": 0.3}})
    assert ratio != ratio
