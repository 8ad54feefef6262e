"""A bridge process for the crash-point tests, and the fork server that starts it quickly.

`python crash_bridge.py` runs a *zygote*: it imports tool-bridge and the SDK once (over a second of CPU), then, for
each JSON line on stdin, forks a bridge child and reports `{"started": pid}` then `{"exited": pid, "status": n}`
(`n` is minus the signal number when the child was killed). A forked child needs no imports, so a scenario with two
bridge lifetimes costs milliseconds instead of seconds. The zygote starts no threads and no event loop, so forking
it is safe.

A child serves one session with `Bridge` + `SqliteJournal`, and SIGKILLs itself when the call to the target tool
reaches the crash point named in its command (nothing when the crash point is empty):

    after_intake      the call's `received` row was written
    after_started     its `started` row is durable, the tool has not run
    mid_tool          the tool's side effect is in the ledger, the tool has not returned
    after_completed   its result is durable, not posted
    after_post        the POST with its result was processed by the API, the response not yet read
    after_response    the POST's response was read, `mark_posted` not yet written
    before_ack        the call is `posted`, its echo arrived, `mark_acked` not yet written

Every tool appends what it does to a ledger file outside the journal, so the test can count executions.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anthropic
import anyio

from bridge import Bridge, ToolContext, tool
from bridge.journal import ApprovalRecord, CallRecord, InboxDecision, JournalStats, SqliteJournal, StoredResult


class Child:
    """One bridge lifetime's settings, from the zygote's command line."""

    def __init__(self, command: Mapping[str, Any]) -> None:
        self.base_url: str = command["base_url"]
        self.api_key: str = command["api_key"]
        self.session_id: str = command["session_id"]
        self.journal = Path(command["journal"])
        self.ledger = Path(command["ledger"])
        self.crash_point: str = command.get("crash_point", "")
        self.target: str = command.get("target", "")
        self.backend: str = command.get("backend", "asyncio")
        self.target_ids: set[str] = set()

    def crash(self, point: str, tool_use_ids: Sequence[str] = ()) -> None:
        """SIGKILL this process if `point` is the crash point and one of `tool_use_ids` is a call to the target."""
        if point == self.crash_point and (not tool_use_ids or self.target_ids.intersection(tool_use_ids)):
            os.kill(os.getpid(), signal.SIGKILL)

    def record(self, line: str) -> None:
        with self.ledger.open("a") as f:
            f.write(line + "\n")


CHILD: Child


@tool
def pay(order: str, context: ToolContext) -> str:
    """Charge an order: not idempotent, must never run twice for one call."""
    CHILD.record(f"pay {context.tool_use_id}")
    CHILD.crash("mid_tool", [context.tool_use_id])
    return f"paid {order}"


@tool(idempotent=True)
def put(key: str, context: ToolContext) -> str:
    """Store a value under an idempotency key, as an idempotent API would: a retry with the same key is a no-op."""
    applied = CHILD.ledger.exists() and f"put-effect {context.idempotency_key}\n" in CHILD.ledger.read_text()
    CHILD.record(f"put-attempt {context.idempotency_key}")
    if not applied:
        CHILD.record(f"put-effect {context.idempotency_key}")
    CHILD.crash("mid_tool", [context.tool_use_id])
    return f"stored {key}"


@tool(read_only=True)
def look(what: str, context: ToolContext) -> str:
    """Read something: changes nothing, may run again."""
    CHILD.record(f"look {context.tool_use_id}")
    CHILD.crash("mid_tool", [context.tool_use_id])
    return f"saw {what}"


class CrashingJournal:
    """A SqliteJournal that SIGKILLs the process at the journal's crash points."""

    def __init__(self, inner: SqliteJournal, child: Child) -> None:
        self.inner = inner
        self.child = child

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def receive(
        self,
        session_id: str,
        tool_use_id: str,
        tool_name: str,
        input: Mapping[str, Any],
        *,
        thread_id: str | None = None,
    ) -> bool:
        if tool_name == self.child.target:
            self.child.target_ids.add(tool_use_id)
        new = await self.inner.receive(session_id, tool_use_id, tool_name, input, thread_id=thread_id)
        if new:
            self.child.crash("after_intake", [tool_use_id])
        return new

    async def start(self, session_id: str, tool_use_id: str) -> bool:
        started = await self.inner.start(session_id, tool_use_id)
        if started:
            self.child.crash("after_started", [tool_use_id])
        return started

    async def complete(self, session_id: str, tool_use_id: str, result: StoredResult) -> bool:
        completed = await self.inner.complete(session_id, tool_use_id, result)
        if completed:
            self.child.crash("after_completed", [tool_use_id])
        return completed

    async def requeue(self, session_id: str, tool_use_id: str) -> bool:
        return await self.inner.requeue(session_id, tool_use_id)

    async def await_approval(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        return await self.inner.await_approval(session_id, tool_use_id, approval)

    async def decide(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        return await self.inner.decide(session_id, tool_use_id, approval)

    async def submit_decision(
        self, tool_use_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> int:
        return await self.inner.submit_decision(
            tool_use_id, approve=approve, by=by, reason=reason, session_id=session_id
        )

    async def decisions(self, after: int = 0) -> list[InboxDecision]:
        return await self.inner.decisions(after)

    async def mark_posted(self, session_id: str, tool_use_ids: Sequence[str]) -> None:
        self.child.crash("after_response", tool_use_ids)
        await self.inner.mark_posted(session_id, tool_use_ids)

    async def mark_acked(self, session_id: str, tool_use_id: str, event_id: str) -> bool:
        self.child.crash("before_ack", [tool_use_id])
        return await self.inner.mark_acked(session_id, tool_use_id, event_id)

    async def abandon(self, session_id: str, tool_use_ids: Sequence[str] | None = None) -> int:
        return await self.inner.abandon(session_id, tool_use_ids)

    async def get(self, session_id: str, tool_use_id: str) -> CallRecord | None:
        record = await self.inner.get(session_id, tool_use_id)
        if record is not None and record.tool_name == self.child.target:
            self.child.target_ids.add(tool_use_id)
        return record

    async def unfinished(self, session_id: str | None = None) -> list[CallRecord]:
        return await self.inner.unfinished(session_id)

    async def prune(self, older_than: float) -> int:
        return await self.inner.prune(older_than)

    async def stats(self) -> JournalStats:
        return await self.inner.stats()


async def serve(child: Child) -> None:
    async def after_post(response: Any) -> None:
        request = response.request
        if request.method == "POST" and request.url.path.endswith("/events"):
            body = json.loads(request.content or b"{}")
            ids = [e.get("custom_tool_use_id", "") for e in body.get("events", [])]
            child.crash("after_post", ids)

    http_client = anthropic.DefaultAsyncHttpxClient(event_hooks={"response": [after_post]})
    client = anthropic.AsyncAnthropic(base_url=child.base_url, api_key=child.api_key, http_client=http_client)
    journal = CrashingJournal(SqliteJournal(child.journal), child)
    async with Bridge(client, [pay, put, look], journal=journal) as bridge:
        await bridge.serve(child.session_id)


def run_child(command: Mapping[str, Any]) -> None:
    global CHILD
    CHILD = Child(command)
    anyio.run(serve, CHILD, backend=CHILD.backend)


def zygote() -> None:
    """Fork a child per command line on stdin; report its pid and, when it ends, its status."""
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_child(command)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"started": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"exited": pid, "status": code}), flush=True)


if __name__ == "__main__":
    zygote()
