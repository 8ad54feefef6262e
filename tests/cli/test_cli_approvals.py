"""`bridge approvals` against a journal held by a running bridge, the /approvals HTTP endpoint, and [approvals]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from bridge_cli_support import bridge_env
from pg import PgServer
from test_cli_health import fetch

from bridge import ApprovalRequest, Approvals, ApprovalSettings, Bridge, CallEventKind, Toolset, tool
from bridge.cli._config import parse_config
from bridge.cli._daemon import approval_plan
from bridge.cli._health import HealthServer
from bridge.journal import ApprovalOutcome, CallState, MemoryJournal, SqliteJournal
from bridge.runtime import PendingApproval
from bridge.testing import AgentTurn, Emulator

pytestmark = pytest.mark.anyio

runs: list[str] = []


@tool(approval="ask")
async def wipe(table: str) -> str:
    """Delete every row of a table.

    Args:
        table: Which table.
    """
    runs.append(table)
    return f"wiped {table}"


async def bridge_cli(*args: str) -> tuple[int, str, str]:
    """Run `python -m bridge ARGS` as a separate process, the way an operator would in another shell."""
    result = await anyio.run_process([sys.executable, "-m", "bridge", *args], env=bridge_env(), check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_cli_decides_calls_of_a_journal_a_running_bridge_holds(tmp_path: Path) -> None:
    """While a bridge holds the SQLite journal, `bridge approvals` lists and shows the parked call, refuses a denial
    without a reason, and an approval made in that other process runs the call once, journaled with who decided."""
    runs.clear()
    path = tmp_path / "journal.db"
    texts: list[str] = []

    async def script(agent: AgentTurn) -> None:
        texts.append((await agent.call_tool("wipe", {"table": "orders"})).text)
        await agent.say("done")

    async with Emulator(script=script) as api:
        client = api.client()
        agent = await client.beta.agents.create(name="a", model="m", tools=Toolset([wipe]).definitions())  # type: ignore[arg-type]
        env = await client.beta.environments.create(name="e")
        session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        parked = anyio.Event()
        bridge = Bridge(
            client,
            [wipe],
            journal=SqliteJournal(path),
            approvals=ApprovalSettings(poll_interval=0.05),
            on_call=lambda e: parked.set() if e.kind is CallEventKind.AWAITING_APPROVAL else None,
        )
        async with bridge:
            bridge.attach(session.id)
            await client.beta.sessions.events.send(
                session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]
            )
            with anyio.fail_after(90):  # five CLI subprocesses: seconds each on a loaded machine
                await parked.wait()
                [pending] = bridge.approvals.pending()
                code, out, _ = await bridge_cli("approvals", "list", "--journal", str(path), "--json")
                assert code == 0
                [listed] = json.loads(out)
                assert (listed["call_id"], listed["tool"], listed["input"]) == (
                    pending.call_id,
                    "wipe",
                    {"table": "orders"},
                )
                code, out, _ = await bridge_cli("approvals", "show", pending.call_id, "--journal", str(path))
                assert (code, json.loads(out)["approval"]["outcome"]) == (0, "pending")
                code, _, err = await bridge_cli("approvals", "deny", pending.call_id, "--journal", str(path))
                assert code == 3
                assert "--reason" in err
                code, out, _ = await bridge_cli(
                    "approvals", "approve", pending.call_id, "--by", "erin", "--journal", str(path)
                )
                assert code == 0, out
                await api.control.wait_idle(session.id, "end_turn")
                code, _, err = await bridge_cli("approvals", "approve", pending.call_id, "--journal", str(path))
                assert code == 6
                assert "not awaiting approval" in err
            record = await bridge.journal.get(session.id, pending.call_id)
        api.control.invariants(session.id).assert_ok()
    assert texts == ["wiped orders"]
    assert runs == ["orders"]
    assert record is not None
    assert record.state is CallState.ACKED
    assert record.approval is not None
    assert (record.approval.outcome, record.approval.by) == (ApprovalOutcome.APPROVED, "erin")


async def test_cli_refuses_a_missing_journal(tmp_path: Path) -> None:
    """A journal path that does not exist is an error naming it, and no file is created."""
    code, _, err = await bridge_cli("approvals", "list", "--journal", str(tmp_path / "none.db"))
    assert code == 6
    assert "no journal at" in err
    assert not (tmp_path / "none.db").exists()


def parked(approvals: Approvals, call_id: str = "sevt_1") -> PendingApproval:
    pending = PendingApproval(call_id, "sesn_1", "wipe", {"table": "t"}, None, 1.0, 2.0)
    approvals.park(pending)
    return pending


async def test_http_endpoint_needs_the_token_and_a_loopback_peer() -> None:
    """/approvals: 401 without or with a wrong token, 403 from a non-loopback peer, lists and decides with the
    right one (409 once decided), and the server binds 127.0.0.1 by default."""
    approvals = Approvals(MemoryJournal())
    first = parked(approvals, "sevt_1")
    parked(approvals, "sevt_2")
    server = HealthServer(dict, approvals=approvals, token="s3cret")
    assert server.host == "127.0.0.1"
    auth = b"Authorization: Bearer s3cret\r\n"
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        assert (await fetch(port, b"GET /approvals HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 401 Unauthorized"
        wrong = b"GET /approvals HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n"
        assert (await fetch(port, wrong))[0] == "HTTP/1.1 401 Unauthorized"
        status, _, body = await fetch(port, b"GET /approvals HTTP/1.1\r\n" + auth + b"\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert [p["call_id"] for p in json.loads(body)] == ["sevt_1", "sevt_2"]
        payload = json.dumps({"by": "frank", "reason": "not now"}).encode()
        deny = (
            b"POST /approvals/sevt_2/deny HTTP/1.1\r\n" + auth + b"Content-Length: %d\r\n\r\n" % len(payload) + payload
        )
        status, _, body = await fetch(port, deny)
        assert (status, json.loads(body)["by"]) == ("HTTP/1.1 200 OK", "frank")
        approve = b"POST /approvals/sevt_1/approve HTTP/1.1\r\n" + auth + b"Content-Length: 0\r\n\r\n"
        assert (await fetch(port, approve))[0] == "HTTP/1.1 200 OK"
        assert (await fetch(port, approve))[0] == "HTTP/1.1 409 Conflict"
        tg.cancel_scope.cancel()
    request = b"GET /approvals HTTP/1.1\r\n" + auth + b"\r\n"
    assert server.respond(request, peer="10.1.2.3")[0] == "403 Forbidden"
    assert server.respond(request, peer="::1")[0] == "200 OK"
    assert HealthServer(dict, approvals=approvals).respond(request)[0] == "404 Not Found"
    waiter = approvals._waiters[first.call_id]
    assert waiter.decision is not None
    assert (waiter.decision.outcome, waiter.decision.by) == (ApprovalOutcome.APPROVED, "http")


def test_approvals_config_is_checked_and_patterns_become_a_policy() -> None:
    """[approvals] rejects typos, bad values and a token written in the file; its patterns match first-wins."""
    from bridge import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"approvals": {"timout": 5, "on_timeout": "maybe", "http_token": "plain", "tools": {"x*": "sometimes"}}},
            {},
        )
    joined = str(caught.value)
    assert "approvals.timout: unknown key (did you mean 'timeout'?)" in joined
    assert "approvals.on_timeout: must be 'deny' or 'allow'" in joined
    assert "approvals.http_token: must come from the environment" in joined
    assert "approvals.tools.x*: must be one of allow, deny, ask" in joined
    config = parse_config(
        {
            "approvals": {
                "timeout": 30,
                "http_token": {"env": "TOKEN"},
                "tools": {"refund_big": "deny", "refund*": "ask"},
            }
        },
        {"TOKEN": "t"},
    )
    assert config.approvals.http_token is not None
    assert config.approvals.http_token.reveal() == "t"
    policy, settings = approval_plan(config.approvals)
    assert settings == ApprovalSettings(timeout=30)
    assert callable(policy)

    def decide(name: str) -> object:
        tool_ = Toolset([wipe]).get("wipe").renamed(name)
        return policy(ApprovalRequest(tool_, {}, "s", "c"))  # type: ignore[operator]

    assert (decide("refund_big"), decide("refund_small"), decide("lookup")) == ("deny", "ask", "allow")
    assert approval_plan(parse_config({}, {}).approvals) == (None, ApprovalSettings())


@pytest.mark.postgres
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cli_decides_calls_parked_by_a_fleet_member_in_postgresql(pg_cluster: PgServer) -> None:
    """`bridge approvals --journal postgresql://...`: lists and shows the call a fleet member parked, refuses an
    unknown id, and an approval made from the other process is applied by the member holding the session: the
    call runs once, journaled with who decided; a second decision is refused."""
    from bridge.journal import PostgresJournal, SessionLeases

    runs.clear()
    url = pg_cluster.url(pg_cluster.create_database("approvals"))

    async def script(agent: AgentTurn) -> None:
        await agent.call_tool("wipe", {"table": "orders"})
        await agent.say("done")

    async with Emulator(script=script) as api:
        client = api.client()
        agent = await client.beta.agents.create(name="a", model="m", tools=Toolset([wipe]).definitions())  # type: ignore[arg-type]
        env = await client.beta.environments.create(name="e")
        session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        parked = anyio.Event()
        leases = SessionLeases(url, ttl=10)
        bridge = Bridge(
            client,
            [wipe],
            journal=PostgresJournal(url, leases=leases),
            leases=leases,
            approvals=ApprovalSettings(poll_interval=0.05),
            on_call=lambda e: parked.set() if e.kind is CallEventKind.AWAITING_APPROVAL else None,
        )
        async with bridge:
            assert bridge.fleet is not None
            await bridge.fleet.offer([session.id])
            await client.beta.sessions.events.send(
                session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]
            )
            with anyio.fail_after(30):
                await parked.wait()
                [pending] = bridge.approvals.pending()
                code, out, err = await bridge_cli("approvals", "list", "--journal", url, "--json")
                assert code == 0, err
                [listed] = json.loads(out)
                assert (listed["call_id"], listed["session_id"], listed["input"]) == (
                    pending.call_id,
                    session.id,
                    {"table": "orders"},
                )
                code, out, _ = await bridge_cli("approvals", "show", pending.call_id, "--journal", url)
                assert (code, json.loads(out)["approval"]["outcome"]) == (0, "pending")
                code, _, err = await bridge_cli("approvals", "approve", "sevt_nope", "--journal", url)
                assert code == 6
                assert "no call sevt_nope" in err
                code, out, err = await bridge_cli(
                    "approvals", "approve", pending.call_id, "--by", "erin", "--journal", url
                )
                assert code == 0, err
                await api.control.wait_idle(session.id, "end_turn")
                code, _, err = await bridge_cli("approvals", "deny", pending.call_id, "-r", "late", "--journal", url)
                assert code == 6
                assert "not awaiting approval" in err
            record = await bridge.journal.get(session.id, pending.call_id)
        api.control.invariants(session.id).assert_ok()
    assert runs == ["orders"]
    assert record is not None
    assert record.approval is not None
    assert (record.approval.outcome, record.approval.by) == (ApprovalOutcome.APPROVED, "erin")
