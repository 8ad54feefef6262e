"""Log output of the `bridge` command: JSON lines for collectors, a live status line on a terminal."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge.cli._console import Console, format_status, setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, Console)]:
        root.removeHandler(handler)
    root.setLevel(level)


def test_auto_is_json_when_not_a_terminal() -> None:
    """Without a TTY, records are JSON lines carrying their `extra` fields, never the message's secrets by design."""
    stream = io.StringIO()
    handler = setup_logging("auto", "info", stream=stream, isatty=lambda: False)
    assert handler.format_name == "json"
    logging.getLogger("bridge.test").info("call %s done", "x", extra={"session_id": "sesn_1", "tool_use_id": "t1"})
    record = json.loads(stream.getvalue())
    assert record["message"] == "call x done"
    assert (record["level"], record["logger"]) == ("info", "bridge.test")
    assert (record["session_id"], record["tool_use_id"]) == ("sesn_1", "t1")
    assert record["ts"].endswith("+00:00")


def test_json_records_include_the_traceback() -> None:
    """An exception logged with `exc_info` keeps its traceback in the `exc` field."""
    stream = io.StringIO()
    setup_logging("json", "info", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bridge.test").exception("failed")
    assert "ValueError: boom" in json.loads(stream.getvalue())["exc"]


def test_live_mode_keeps_a_status_line_below_the_records() -> None:
    """On a terminal, warnings print above the status line, which is redrawn after each of them; info is hidden."""
    stream = io.StringIO()
    handler = setup_logging("auto", "info", stream=stream, isatty=lambda: True)
    assert handler.live
    handler.status("bridge: 1 session(s)")
    logging.getLogger("bridge.test").info("hidden in live mode")
    logging.getLogger("bridge.test").warning("agent differs")
    handler.status("bridge: 2 session(s)")
    handler.close_status()
    out = stream.getvalue()
    assert "hidden" not in out
    assert out.index("agent differs") < out.rindex("bridge: 1 session(s)")
    assert out.endswith("\r\x1b[2Kbridge: 2 session(s)\n")


def test_text_mode_and_bad_formats() -> None:
    """`text` gives plain one-line records with extras; an unknown format is refused."""
    stream = io.StringIO()
    setup_logging("text", "debug", stream=stream)
    logging.getLogger("bridge.test").debug("hello", extra={"agent": "agent_1"})
    assert stream.getvalue().rstrip().endswith("DEBUG   hello  [agent=agent_1]")
    with pytest.raises(ValueError, match="unknown log format"):
        setup_logging("xml")


def test_status_line_names_only_what_happened() -> None:
    """The status line always shows sessions, running, queued and done; failures only when there are some."""
    assert format_status({"sessions": 2, "running": 3}) == "bridge: 2 session(s) · 3 running · 0 queued · 0 done"
    assert format_status({"finished": 4, "timed_out": 1}).endswith("4 done · 1 timed out")
