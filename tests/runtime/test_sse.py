"""The SSE decoder: frames split anywhere across chunks, CRLF, comments as keep-alives, multi-line data."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from bridge.runtime._intake import Frame, sse_frames

pytestmark = pytest.mark.anyio


class Chunks(httpx2.AsyncByteStream):
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def frames(*chunks: bytes) -> list[Frame]:
    response = httpx2.Response(200, stream=Chunks(*chunks))
    return [frame async for frame in sse_frames(response)]


async def test_frames_survive_any_chunking() -> None:
    """The same body decodes to the same frames however the bytes are split, CRLFs included."""
    body = (
        b'event: a\r\ndata: {"x": 1}\r\n\r\n: keep-alive\n\nevent: ping\ndata: {}\n\nevent: b\ndata: l1\ndata: l2\n\n'
    )
    expected = [Frame("a", '{"x": 1}'), Frame("ping", ""), Frame("ping", "{}"), Frame("b", "l1\nl2")]
    assert await frames(body) == expected
    assert await frames(*[body[i : i + 1] for i in range(len(body))]) == expected
    assert await frames(body[:9], body[9:10], body[10:]) == expected


async def test_an_unfinished_frame_at_the_end_is_dropped() -> None:
    """A frame without its closing blank line never completed, so it is not delivered."""
    assert await frames(b"event: a\ndata: 1\n\nevent: b\ndata: 2\n") == [Frame("a", "1")]


async def test_data_only_frames_are_kept() -> None:
    """A frame with data but no event name is still delivered (its JSON `type` decides what it is)."""
    assert await frames(b"data: {}\n\n") == [Frame(None, "{}")]
