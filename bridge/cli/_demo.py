"""`bridge demo`: the whole product on the embedded emulator, with no API key and no network.

What runs is production code: the emulator is a real HTTP server on 127.0.0.1, the client is the real `anthropic`
SDK, the agent is created by `bridge sync`'s code, and the tools are served by `bridge run`'s `serve()` with the
durable SQLite journal. Only the base URL differs from a real deployment. The "model" is a scripted agent that asks
the database pack about the sample shop, sends one call with bad input and corrects it from the error text, and runs a
slow warehouse lookup beside two fast exchange-rate calls in one parallel batch.

The demo checks itself: the final answer must match what the tools compute directly, and the emulator's invariant
checker must report no unanswered, duplicate, late or unknown results. `bridge demo` exits 1 otherwise.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .. import Toolset
from ..agents import create_agent
from ._daemon import ServePlan, serve
from ._demo_tools import RATES, demo_toolset, quote_cents, restock

__all__ = ["Facts", "expected_answer", "run_demo"]

log = logging.getLogger("bridge.demo")

MODEL = "claude-opus-4-7"
QUESTION = (
    "Who is our best customer, what would express shipping of their latest order cost (also in EUR and GBP), "
    "and can the warehouse ship more of what they ordered this week?"
)
BEST_CUSTOMER_SQL = (
    "SELECT c.id, c.name, SUM(o.total_cents) AS spent_cents FROM customers AS c "
    "JOIN orders AS o ON o.customer_id = c.id GROUP BY c.id ORDER BY spent_cents DESC, c.id LIMIT 1"
)
LATEST_ORDER_SQL = (
    "SELECT o.id AS order_id, p.id AS product_id, p.name AS product FROM orders AS o "
    "JOIN order_items AS i ON i.order_id = o.id JOIN products AS p ON p.id = i.product_id "
    "WHERE o.customer_id = {customer_id} ORDER BY o.placed_at DESC, i.quantity DESC, p.id LIMIT 1"
)


@dataclass(frozen=True)
class Facts:
    """The ground truth, read straight from the sample database, that the agent's answer must match."""

    customer_id: int
    customer: str
    spent_cents: int
    order_id: int
    product_id: int
    product: str


def read_facts(db: Path) -> Facts:
    """Ask the sample database directly what the agent should find through the tools."""
    with sqlite3.connect(db) as conn:
        customer_id, customer, spent = conn.execute(BEST_CUSTOMER_SQL).fetchone()
        order_id, product_id, product = conn.execute(LATEST_ORDER_SQL.format(customer_id=customer_id)).fetchone()
    conn.close()
    return Facts(customer_id, customer, spent, order_id, product_id, product)


def expected_answer(facts: Facts) -> str:
    """The answer a correct run gives, computed from the tools' own functions."""
    price = quote_cents(facts.order_id, "express")
    stock = restock(facts.product_id)
    return _answer(facts, price, RATES["EUR"], RATES["GBP"], stock["available"], stock["restock_days"])


def _answer(facts: Facts, price: int, eur: float, gbp: float, available: int, days: int) -> str:
    return (
        f"{facts.customer} is your best customer ({_usd(facts.spent_cents)} spent). Express shipping of their latest "
        f"order #{facts.order_id} costs {_usd(price)} (EUR {price * eur / 100:,.2f} / GBP {price * gbp / 100:,.2f}). "
        f"The warehouse can ship {available} more units of {facts.product} this week and restocks in {days} days."
    )


def _usd(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def make_script(facts: Facts) -> Any:
    """The scripted "model": it reads tool results and corrects itself from an error, like a real agent would."""
    from ..testing import AgentTurn

    async def script(agent: AgentTurn) -> None:
        query = next((name for name in agent.tool_names if name.endswith("query")), None)
        if query is None:
            await agent.say("I have no database query tool.")
            return
        best = await agent.call_tool(query, {"sql": BEST_CUSTOMER_SQL})
        if best.is_error or facts.customer not in best.text:
            await agent.say(f"The customer query did not work: {best.text[:300]}")
            return
        latest = await agent.call_tool(query, {"sql": LATEST_ORDER_SQL.format(customer_id=facts.customer_id)})
        if latest.is_error or facts.product not in latest.text:
            await agent.say(f"The order query did not work: {latest.text[:300]}")
            return
        # A plausible mistake: the order's display reference and a speed the tool does not offer.
        wrong = await agent.call_tool("shipping_quote", {"order_id": f"#{facts.order_id}", "speed": "overnight"})
        if not wrong.is_error:
            await agent.say("The shipping tool accepted an invalid request.")
            return
        quote = await agent.call_tool("shipping_quote", {"order_id": facts.order_id, "speed": "express"})
        if quote.is_error:
            await agent.say(f"The corrected shipping quote failed too: {quote.text[:300]}")
            return
        stock, eur, gbp = await agent.call_tools(
            [
                ("check_warehouse", {"product_id": facts.product_id}),
                ("exchange_rate", {"currency": "EUR"}),
                ("exchange_rate", {"currency": "GBP"}),
            ]
        )
        failed = [r for r in (stock, eur, gbp) if r.is_error]
        if failed:
            await agent.say(f"A lookup failed: {failed[0].text[:300]}")
            return
        price = json.loads(quote.text)["price_cents"]
        warehouse = json.loads(stock.text)
        await agent.say(
            _answer(
                facts,
                price,
                json.loads(eur.text)["rate"],
                json.loads(gbp.text)["rate"],
                warehouse["available"],
                warehouse["restock_days"],
            )
        )

    return script


def demo_tools(db: Path) -> Toolset:
    """The example toolsets: the database pack on the sample shop, and the shop's internal APIs."""
    from toolkits.database import sqlite_toolset

    return Toolset.merge(sqlite_toolset(db), demo_toolset())


async def run_demo() -> bool:
    """Run the demo end to end, printing progress, the transcript and a summary. Returns True when it checks out."""
    from anthropic import AsyncAnthropic

    from toolkits.database import make_sample_db

    from ..journal import SqliteJournal
    from ..testing import Emulator
    from ._console import live_console

    console = live_console()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bridge-demo-") as tmp:
        db = make_sample_db(Path(tmp) / "shop.db")
        facts = read_facts(db)
        toolset = demo_tools(db)
        _say(f"tool-bridge demo: {len(toolset)} tools ({', '.join(toolset.names())})")
        async with Emulator(script=make_script(facts)) as api:
            _say(f"emulator    {api.base_url} (a local Managed Agents API; nothing leaves this machine)")
            async with AsyncAnthropic(base_url=api.base_url, api_key=api.api_key) as client:
                agent_id, _ = await create_agent(
                    client, "shop-assistant", MODEL, toolset.definitions(), system="You help run a coffee shop."
                )
                environment = await client.beta.environments.create(name="demo", config={"type": "cloud"})
                session = await client.beta.sessions.create(agent=agent_id, environment_id=environment.id)
                _say(f"agent       {agent_id}, created with the tool definitions (as `bridge sync --create` does)")
                _say(f"session     {session.id}, served by `bridge run`'s code with a SQLite journal")
                journal_path = Path(tmp) / "journal.db"
                plan = ServePlan(agent=agent_id, journal=f"sqlite {journal_path}", timeout=20)
                progress = Progress(started)
                stop = anyio.Event()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_serve, client, toolset, SqliteJournal(journal_path), plan, stop, progress, console)
                    _say(f"user        {QUESTION}")
                    await client.beta.sessions.events.send(
                        session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": QUESTION}]}]
                    )
                    await api.control.wait_idle(session.id, "end_turn", timeout=15)
                    stop.set()
                events = [event.to_dict(mode="json") async for event in client.beta.sessions.events.list(session.id)]
            report = api.control.invariants(session.id)
        answer = next((_text(e) for e in reversed(events) if e.get("type") == "agent.message"), "")
        answer_ok = answer == expected_answer(facts)
        _print_transcript(events)
        _print_summary(events, report, progress, time.monotonic() - started, answer_ok)
    return answer_ok and bool(report.ok)


class Progress:
    """Prints each call as it starts and ends, and measures how many ran at once."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.running: dict[str, float] = {}
        self.max_parallel = 0
        self.durations: dict[str, float] = {}
        self.names: dict[str, str] = {}
        self.overtaken = 0  # calls that finished while the slow warehouse call was still running

    def __call__(self, event: Any) -> None:
        kind = str(event.kind)
        elapsed = time.monotonic() - self.started
        if kind == "started":
            self.names[event.tool_use_id] = event.tool
            self.running[event.tool_use_id] = time.monotonic()
            self.max_parallel = max(self.max_parallel, len(self.running))
            _say(f"  {elapsed:5.2f}s  ▸ {event.tool:<16} started   ({len(self.running)} running)")
        elif kind in ("finished", "failed", "timed_out", "cancelled"):
            began = self.running.pop(event.tool_use_id, None)
            if "check_warehouse" in (self.names.get(i) for i in self.running):
                self.overtaken += 1
            duration = event.duration if event.duration is not None else time.monotonic() - (began or time.monotonic())
            self.durations[event.tool_use_id] = duration
            mark = "✓" if kind == "finished" else "✗"
            detail = f"  {_short(event.detail, 60)}" if kind != "finished" and event.detail else ""
            _say(f"  {elapsed:5.2f}s  {mark} {event.tool:<16} {kind:<9} {duration * 1000:6.0f} ms{detail}")
        elif kind == "posted":
            _say(f"  {elapsed:5.2f}s  ↑ {event.tool:<16} result posted")


async def _serve(
    client: Any,
    toolset: Toolset,
    journal: Any,
    plan: ServePlan,
    stop: anyio.Event,
    progress: Progress,
    console: Any,
) -> None:
    await serve(client, toolset, journal, plan, console=console, stop=stop, on_call=progress)


def _text(event: Mapping[str, Any]) -> str:
    return "".join(str(b.get("text", "")) for b in event.get("content") or [] if b.get("type") == "text")


def _print_transcript(events: list[dict[str, Any]]) -> None:
    lines = ["── transcript " + "─" * 66]
    names: dict[str, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "user.message":
            lines.append(f"user    {_text(event)}")
        elif kind == "agent.custom_tool_use":
            names[str(event.get("id"))] = str(event.get("name"))
            lines.append(f"agent → {event.get('name')} {_short(json.dumps(event.get('input'), ensure_ascii=False))}")
        elif kind == "user.custom_tool_result":
            status = "error" if event.get("is_error") else "ok   "
            name = names.get(str(event.get("custom_tool_use_id")), "?")
            lines.append(f"tool  ← {name} {status} {_short(_text(event))}")
        elif kind == "agent.message":
            lines.append(f"agent   {_text(event)}")
    _say("\n".join(lines))


def _print_summary(
    events: list[dict[str, Any]], report: Any, progress: Progress, elapsed: float, answer_ok: bool
) -> None:
    results = [e for e in events if e.get("type") == "user.custom_tool_result"]
    errors = sum(1 for e in results if e.get("is_error"))
    violations = len(report.unanswered) + len(report.duplicates) + len(report.late) + len(report.unknown_result_ids)
    lines = [
        "── summary " + "─" * 69,
        f"calls        {len(report.calls)} answered, {errors} rejected for bad input and then corrected by the agent",
        f"parallel     up to {progress.max_parallel} calls at once: {progress.overtaken} fast call(s) answered "
        "while the slow warehouse call was still running",
        f"invariants   {violations} violation(s): unanswered {len(report.unanswered)}, duplicates "
        f"{len(report.duplicates)}, late {len(report.late)}, unknown {len(report.unknown_result_ids)}",
        f"answer       {'as expected' if answer_ok else 'WRONG: it does not match what the tools compute'}",
        f"time         {elapsed:.1f} s, no API key, no network",
        "next         bridge tools myapp.tools:toolset  |  bridge sync ... --agent ID  |  bridge run ... --agent ID",
    ]
    _say("\n".join(lines))


def _short(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _say(text: str) -> None:
    from ._console import live_console

    console = live_console()
    if console is not None:
        console.echo(text)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
