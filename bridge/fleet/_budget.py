"""The request budget: N bridge processes, one organisation, one rate limit.

The platform limits an organisation's requests (600 per minute for sessions and agents calls, at the time of
writing). A fleet that ignores the limit finds out through 429s: every process backs off on its own, retries in a
herd and gets 429 again. A budget makes the fleet ask first. Every API request takes a token; tokens come back at
`rate` per second up to `burst`.

The bucket is a GCRA (generic cell rate algorithm): one number, the theoretical arrival time `tat` of the next
request. Taking a token moves `tat` forward by `1 / rate` and tells the caller how long to wait so that no more than
`burst` requests fall in any `burst / rate` window: a reservation, so callers queue in arrival order and are never
refused, and one atomic update decides each one. `LocalBudget` keeps `tat` in the process (one process, or a fleet
that splits the rate: give each of N processes `rate / N`); `PostgresBudget` keeps it in a row of `bridge_budgets`,
shared by the whole fleet, updated with one statement per request in database time.

When a 429 gets through anyway (another client of the same organisation, a limit lower than configured),
`penalize(retry_after)` pushes `tat` past the retry time for everyone sharing the budget, so the fleet waits once,
together, and then resumes at `rate` instead of all at the same instant.

`fleet_http_client(budget=...)` (`_http.py`) plugs a budget into the SDK.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from ..journal import Database

if TYPE_CHECKING:
    import httpx2
    import psycopg

__all__ = ["Budget", "BudgetStats", "LocalBudget", "PostgresBudget", "retry_after"]


_EPSILON = 1e-6  # seconds: float noise in `tat` arithmetic, not a wait


@dataclass
class BudgetStats:
    """How a budget has been used, for `stats()` and `/metrics`."""

    rate: float
    burst: float
    acquired_total: int = 0
    waited_total: int = 0
    waited_seconds_total: float = 0.0
    throttled_total: int = 0  # 429 answers reported through `penalize`


@runtime_checkable
class Budget(Protocol):
    """A shared request budget."""

    async def acquire(self, cost: float = 1.0) -> float:
        """Wait until `cost` requests may be made; returns the seconds waited."""
        ...

    async def penalize(self, seconds: float) -> None:
        """The API answered 429 with this `retry-after`: hold every user of the budget back that long."""
        ...

    def stats(self) -> BudgetStats:
        """Counts since start."""
        ...


def _check(rate: float, burst: float | None) -> float:
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate!r}")
    burst = rate if burst is None else burst
    if burst < 1:
        raise ValueError(f"burst must be at least 1, got {burst!r}")
    return burst


class _Counted:
    _stats: BudgetStats

    async def _wait(self, wait: float) -> float:
        self._stats.acquired_total += 1
        if wait > 0:
            self._stats.waited_total += 1
            self._stats.waited_seconds_total += wait
            await anyio.sleep(wait)  # the reserved slot: a rate, not a synchronisation
        return wait

    def stats(self) -> BudgetStats:
        return BudgetStats(**vars(self._stats))


class LocalBudget(_Counted):
    """A token bucket in this process.

    Args:
        rate: Requests per second (for a fleet splitting the limit: the organisation's rate / processes).
        burst: Requests allowed at once (default: one second's worth).
    """

    def __init__(self, rate: float, burst: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = _check(rate, burst)
        self._clock = clock
        self._tat = clock()
        self._stats = BudgetStats(rate, self.burst)

    def __repr__(self) -> str:
        return f"LocalBudget(rate={self.rate}, burst={self.burst})"

    def reserve(self, cost: float = 1.0) -> float:
        """Take `cost` tokens now; returns how long the caller must wait before using them."""
        now = self._clock()
        self._tat = max(self._tat, now) + cost / self.rate
        wait = self._tat - now - self.burst / self.rate
        return wait if wait > _EPSILON else 0.0

    async def acquire(self, cost: float = 1.0) -> float:
        return await self._wait(self.reserve(cost))

    async def penalize(self, seconds: float) -> None:
        self._stats.throttled_total += 1
        self._tat = max(self._tat, self._clock() + seconds + (self.burst - 1) / self.rate)


_ENSURE = "INSERT INTO bridge_budgets (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING"
_ACQUIRE = (
    "UPDATE bridge_budgets SET tat = greatest(tat, clock_timestamp()) + %(cost)s / %(rate)s * interval '1 second' "
    "WHERE name = %(name)s "
    "RETURNING greatest(0, extract(epoch from tat - clock_timestamp())::float8 - %(burst)s / %(rate)s)"
)
_PENALIZE = (
    "UPDATE bridge_budgets SET tat = greatest(tat, clock_timestamp() + "
    "(%(seconds)s + (%(burst)s - 1) / %(rate)s) * interval '1 second') WHERE name = %(name)s"
)


class PostgresBudget(_Counted):
    """A token bucket in PostgreSQL, shared by every process that names the same budget.

    Each `acquire()` is one UPDATE of the budget's row (its row lock serialises the fleet's reservations, in database
    time). All processes must use the same `rate` and `burst`; the row holds only the schedule.

    Args:
        dsn: A libpq connection string or `postgresql://` URL (the fleet's database).
        rate: Requests per second for the whole fleet.
        burst: Requests allowed at once (default: one second's worth).
        name: Budgets with different names are independent.
        database: Share a pool with the journal and leases.
    """

    def __init__(
        self,
        dsn: str,
        rate: float,
        burst: float | None = None,
        *,
        name: str = "api",
        pool_size: int = 4,
        database: Database | None = None,
    ) -> None:
        self.rate = rate
        self.burst = _check(rate, burst)
        self.name = name
        self.db = database or Database(dsn, max_size=pool_size)
        self._stats = BudgetStats(rate, self.burst)
        self._open = False

    def __repr__(self) -> str:
        return f"PostgresBudget(name={self.name!r}, rate={self.rate}, burst={self.burst})"

    async def __aenter__(self) -> PostgresBudget:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()

    async def open(self) -> None:
        """Connect (creating the tables if needed) and create the budget's row if it is new."""
        if not self._open:
            await self.db.open()
            self._open = True
            await self._execute(_ENSURE)

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.db.close()

    async def _execute(self, query: str, **params: Any) -> float | None:
        values = {"name": self.name, "rate": self.rate, "burst": self.burst, **params}

        def work(conn: psycopg.Connection[Any]) -> float | None:
            cursor = conn.execute(query, values)
            row = cursor.fetchone() if cursor.description else None
            return float(row[0]) if row else None

        return await self.db.run(work)

    async def reserve(self, cost: float = 1.0) -> float:
        """Take `cost` tokens now (one statement); returns how long the caller must wait before using them."""
        wait = await self._execute(_ACQUIRE, cost=cost) or 0.0
        return wait if wait > _EPSILON else 0.0

    async def acquire(self, cost: float = 1.0) -> float:
        return await self._wait(await self.reserve(cost))

    async def penalize(self, seconds: float) -> None:
        self._stats.throttled_total += 1
        await self._execute(_PENALIZE, seconds=seconds)


def retry_after(headers: httpx2.Headers) -> float:
    """Seconds a 429 asks to wait: `retry-after-ms`, else `retry-after` in seconds, else 1."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue  # an HTTP date: rare from this API; fall through to the default
    return 1.0
