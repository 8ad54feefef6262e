"""`bridge approvals list|show|approve|deny`: decide parked calls from another shell while `bridge run` serves.

The command works on the journal `bridge run` uses: the SQLite file (`--journal`, `--state-dir` or bridge.toml), or
a fleet's PostgreSQL database (`--journal postgresql://...`). It only reads calls and appends decisions to the
journal's inbox (`bridge.journal.ApprovalInbox` for SQLite, `PostgresInbox` for PostgreSQL); the running bridge
reads the inbox every `[approvals] poll_interval` seconds (1 s by default) and applies the decision itself,
journaling who made it and when. In a fleet, whichever member holds the call's session applies it. If no bridge
runs, the decision waits in the inbox and is applied when the call is served again.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..journal import ApprovalInbox, CallRecord, PostgresInbox
from ._setup import EXIT_OK

__all__ = ["run_approvals"]


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
