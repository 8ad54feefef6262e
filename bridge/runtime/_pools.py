"""Connection pools for event streams: each served session holds one stream connection for as long as it is served.

Streams must not live in the pool that result posts use: hundreds of them would exhaust it (the SDK's default pool
holds 1,000 connections) and slow every request down, because httpcore scans every pooled connection each time a
request starts or ends. So streams get pools of their own, a few dozen streams each (`SHARD`), as copies of the
bridge's client that differ only in their `http_client`. A client whose `http_client` is not the SDK's default
class (custom transports: proxies through a mounted transport, aiohttp...) cannot be copied faithfully; its streams
share its pool, and `Bridge(stream_client=...)` is the way to give them another.
"""

from __future__ import annotations

import logging

import httpx2
from anthropic import AsyncAnthropic, DefaultAsyncHttpxClient

__all__ = ["SHARD", "StreamPools"]

logger = logging.getLogger("bridge")

SHARD = 48
"""Streams per connection pool."""


class StreamPools:
    """Hands each served session a client to open its stream with, spreading sessions over small pools.

    Args:
        client: The bridge's client; its copies differ only in their `http_client`.
        fixed: Use this client for every stream (`Bridge(stream_client=...)`), or None to make pools.
    """

    def __init__(self, client: AsyncAnthropic, fixed: AsyncAnthropic | None = None) -> None:
        self._client = client
        self._fixed = fixed
        self._pools: list[tuple[AsyncAnthropic, list[int]]] = []  # (client, [streams using it])
        if fixed is None and not isinstance(getattr(client, "_client", None), DefaultAsyncHttpxClient):
            logger.info("the client has a custom http_client: event streams share its connection pool")
            self._fixed = client

    def __repr__(self) -> str:
        return f"StreamPools(pools={len(self._pools)}, streams={sum(n[0] for _, n in self._pools)})"

    def acquire(self) -> AsyncAnthropic:
        """A client for one more stream; give it back with `release` when the session is no longer served."""
        if self._fixed is not None:
            return self._fixed
        for client, count in self._pools:
            if count[0] < SHARD:
                count[0] += 1
                return client
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=0)
        http_client = DefaultAsyncHttpxClient(limits=limits, timeout=self._client.timeout)
        client = self._client.with_options(http_client=http_client)
        self._pools.append((client, [1]))
        return client

    def release(self, client: AsyncAnthropic) -> None:
        for known, count in self._pools:
            if known is client:
                count[0] -= 1
                return

    async def aclose(self) -> None:
        """Close the pools this object made (never the bridge's own client or a `stream_client` it was given)."""
        pools, self._pools = self._pools, []
        for client, _ in pools:
            await client.close()
