"""`bridge approvals list|show|approve|deny`: decide parked calls from another shell while `bridge run` serves.

The command works on the journal `bridge run` uses: the SQLite file (`--journal`, `--state-dir` or bridge.toml), or
a fleet's PostgreSQL database (`--journal postgresql://...`). It only reads calls and appends decisions to the
journal's inbox (`bridge.journal.ApprovalInbox` for SQLite, `PostgresJournal.submit_decision` for PostgreSQL); the
running bridge reads the inbox every `[approvals] poll_interval` seconds (1 s by default) and applies the decision
itself, journaling who made it and when. In a fleet, whichever member holds the call's session applies it. If no
bridge runs, the decision waits in the inbox and is applied when the call is served again.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio

from .._errors import ConfigError, JournalError
from ..journal import ApprovalInbox, CallRecord, CallState, PostgresJournal, describe_dsn
from ._setup import EXIT_OK

__all__ = ["PostgresInbox", "run_approvals"]

T = TypeVar("T")


def run_approvals(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run `bridge approvals ACTION` with parsed arguments; returns the exit code."""
    inbox: ApprovalInbox | PostgresInbox
    inbox = PostgresInbox(args.journal) if _is_postgres(args.journal) else ApprovalInbox(_path(args, environ))
    if args.action == "list":
        records = inbox.pending()
        if args.json:
            _out(json.dumps([_as_json(r) for r in records], indent=2, ensure_ascii=False))
        elif not records:
            _out("no calls are waiting for approval")
        else:
            for record in records:
                deadline = record.approval.deadline if record.approval else None
                _out(f"{record.tool_use_id}  {record.tool_name:<24} session {record.session_id}  until {_at(deadline)}")
        return EXIT_OK
    if args.call_id is None:
        raise ConfigError(f"`bridge approvals {args.action}` needs the CALL_ID (see `bridge approvals list`)")
    if args.action == "show":
        found = inbox.get(args.call_id, args.session)
        if found is None:
            raise ConfigError(f"no call {args.call_id} in journal {inbox.path}")
        _out(json.dumps(_as_json(found), indent=2, ensure_ascii=False))
        return EXIT_OK
    by = args.by or _user(environ)
    approve = args.action == "approve"
    if not approve and not args.reason:
        raise ConfigError("`bridge approvals deny` needs --reason: the model reads it")
    record = inbox.submit(args.call_id, approve=approve, by=by, reason=args.reason, session_id=args.session)
    verb = "approved" if approve else "denied"
    _out(f"{verb} {record.tool_use_id} ({record.tool_name}) as {by}; the running bridge applies it within seconds")
    return EXIT_OK


class PostgresInbox:
    """`ApprovalInbox`'s three operations on a fleet's PostgreSQL journal (one short connection per command).

    Decisions go to the journal's inbox table, never onto the call rows: those belong to the member holding the
    session's lease (fenced writes), which applies the decision within its poll interval.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.path = f"postgresql {describe_dsn(dsn)}"

    def _run(self, work: Callable[[PostgresJournal], Awaitable[T]]) -> T:
        async def main() -> T:
            async with PostgresJournal(self.dsn, pool_size=1) as journal:
                return await work(journal)

        return anyio.run(main)

    def pending(self) -> list[CallRecord]:
        return self._run(lambda journal: journal.awaiting_approval())

    def get(self, call_id: str, session_id: str | None = None) -> CallRecord | None:
        records = self._run(lambda journal: journal.find(call_id, session_id))
        if len(records) > 1:
            sessions = ", ".join(r.session_id for r in records)
            raise JournalError(f"call {call_id} exists in several sessions ({sessions}); name one with --session")
        return records[0] if records else None

    def submit(
        self, call_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> CallRecord:
        record = self.get(call_id, session_id)
        if record is None:
            raise JournalError(f"no call {call_id} in journal {self.path}")
        if record.state is not CallState.AWAITING_APPROVAL:
            outcome = record.approval.outcome.value if record.approval is not None else "no approval asked"
            raise JournalError(f"call {call_id} is not awaiting approval (state {record.state.value}, {outcome})")
        self._run(
            lambda journal: journal.submit_decision(
                call_id, approve=approve, by=by, reason=reason, session_id=record.session_id
            )
        )
        return record


def _is_postgres(choice: str | None) -> bool:
    return bool(choice) and str(choice).startswith(("postgresql://", "postgres://"))


def _path(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    from ._config import Config, load_config
    from ._daemon import journal_path

    config = load_config(args.config, environ) if args.config else Config()
    path = journal_path(args.journal, args.state_dir, config)
    if path is None:
        raise ConfigError("the memory journal lives inside `bridge run`: decide its calls over HTTP (/approvals)")
    return path


def _user(environ: Mapping[str, str]) -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return environ.get("USER", "cli")


def _at(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


def _as_json(record: CallRecord) -> dict[str, Any]:
    approval = record.approval.to_json() if record.approval else None
    if approval is not None:
        approval["outcome"] = str(approval["outcome"])
    return {
        "call_id": record.tool_use_id,
        "session_id": record.session_id,
        "tool": record.tool_name,
        "input": dict(record.input),
        "thread_id": record.thread_id,
        "state": record.state.value,
        "approval": approval,
    }


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
