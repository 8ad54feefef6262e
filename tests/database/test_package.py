"""The package surface: exports, the optional PostgreSQL extra, the sample database, preview bookkeeping."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import toolkits.database
from bridge import ToolError
from toolkits.database import make_sample_db
from toolkits.database._preview import PreviewBook


def test_all_is_sorted_and_complete() -> None:
    """The public names are listed once, sorted, and each resolves."""
    assert toolkits.database.__all__ == sorted(toolkits.database.__all__)
    for name in toolkits.database.__all__:
        assert getattr(toolkits.database, name) is not None


def test_postgres_toolset_without_the_extra_names_the_install_command() -> None:
    """Without psycopg, importing postgres_toolset names `pip install 'tool-bridge[postgres]'`; SQLite still works."""
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from toolkits.database import sqlite_toolset\n"
        "try:\n"
        "    from toolkits.database import postgres_toolset\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert "pip install 'tool-bridge[postgres]'" in out.stdout


def test_sample_database_is_deterministic(tmp_path: Path) -> None:
    """Two builds of the sample shop have the same rows, so the demo and docs can quote them."""
    first, second = make_sample_db(tmp_path / "a.db"), make_sample_db(tmp_path / "b.db")
    dumps = []
    for path in (first, second):
        conn = sqlite3.connect(path)
        dumps.append(list(conn.iterdump()))
        conn.close()
    assert dumps[0] == dumps[1]
    assert any("Ignore all previous instructions" in line for line in dumps[0])


def test_example_script_builds_the_sample(tmp_path: Path) -> None:
    """examples/data/make_shop_db.py writes the sample database where it is told."""
    root = Path(__file__).resolve().parents[2]
    target = tmp_path / "shop.db"
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "examples/data/make_shop_db.py", str(target)], check=True, cwd=root, env=env)
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT count(*) FROM orders").fetchone() == (200,)
    conn.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_preview_ids_are_single_use_bound_and_expiring() -> None:
    """A preview id commits once, only the same SQL and params, and only before it expires."""
    clock = Clock()
    book = PreviewBook(ttl=10, clock=clock)
    preview = book.issue("DELETE FROM t WHERE id = ?", [1], 1)
    assert book.take(preview.id, "DELETE FROM t WHERE id = ?", [1]).rowcount == 1
    with pytest.raises(ToolError, match="already used"):
        book.take(preview.id, "DELETE FROM t WHERE id = ?", [1])
    other = book.issue("DELETE FROM t WHERE id = ?", [1], 1)
    with pytest.raises(ToolError, match="differ from the preview"):
        book.take(other.id, "DELETE FROM t WHERE id = ?", ["1"])
    late = book.issue("DELETE FROM t", [], 3)
    clock.now = 11
    with pytest.raises(ToolError, match="expired"):
        book.take(late.id, "DELETE FROM t", [])


def test_missing_postgres_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without server binaries the PostgreSQL tests skip, unless BRIDGE_REQUIRE_POSTGRES=1 (CI) makes them fail."""
    from pg import unavailable

    monkeypatch.delenv("BRIDGE_REQUIRE_POSTGRES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need server binaries"):
        unavailable("no initdb found")
    monkeypatch.setenv("BRIDGE_REQUIRE_POSTGRES", "1")
    with pytest.raises(pytest.fail.Exception, match="BRIDGE_REQUIRE_POSTGRES=1"):
        unavailable("no initdb found")
