"""Stream pools: sessions' long-lived stream connections spread over small pools apart from the posts' pool."""

from __future__ import annotations

import httpx2
import pytest
from anthropic import AsyncAnthropic

from bridge.runtime._pools import SHARD, StreamPools

pytestmark = pytest.mark.anyio


async def test_streams_are_spread_over_small_pools_of_their_own() -> None:
    """Each pool holds at most SHARD streams, none is the bridge's own client, and a freed place is reused."""
    client = AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9")
    pools = StreamPools(client)
    taken = [pools.acquire() for _ in range(2 * SHARD + 1)]
    assert len({id(c) for c in taken}) == 3
    assert client not in taken
    assert all(c.base_url == client.base_url for c in taken)
    pools.release(taken[0])
    assert pools.acquire() is taken[0]
    await pools.aclose()
    await client.close()


async def test_a_given_stream_client_or_a_custom_transport_is_used_as_is() -> None:
    """`stream_client=` is used for every stream; a client with a custom http_client keeps it for streams too."""
    client = AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9")
    other = AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9")
    assert StreamPools(client, other).acquire() is other
    custom = AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9", http_client=httpx2.AsyncClient())
    assert StreamPools(custom).acquire() is custom
    for c in (client, other, custom):
        await c.close()
