"""The tool the fleet workload's `bridge run` members serve (loaded by TARGET, as a user's module would be)."""

from __future__ import annotations

import anyio

from bridge import Toolset, tool

WORK_SECONDS = 0.05


@tool
async def work(job: str) -> str:
    """Do 50 ms of I/O-bound work for a job.

    Args:
        job: The job's name.
    """
    await anyio.sleep(WORK_SECONDS)
    return f"done {job}"


toolset = Toolset([work])
