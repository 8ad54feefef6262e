"""`bridge mcp serve` from bridge.toml: a toolkit pack keeps its guarantees over MCP; unsafe HTTP setups are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_support import is_error, stdio_session, texts

from bridge.cli import main
from toolkits.database import make_sample_db

pytestmark = pytest.mark.anyio


async def test_read_only_database_pack_over_mcp(tmp_path: Path) -> None:
    """The sqlite pack served from bridge.toml over stdio answers queries and refuses a write."""
    make_sample_db(tmp_path / "shop.db", orders=20)
    (tmp_path / "bridge.toml").write_text(
        '[toolsets.shop]\nuse = "toolkits.database:sqlite_toolset"\npath_or_uri = "shop.db"\n', encoding="utf-8"
    )
    async with stdio_session(["--config", "bridge.toml"], cwd=tmp_path) as session:
        names = [tool.name for tool in (await session.list_tools()).tools]
        count = await session.call_tool("db_query", {"sql": "SELECT count(*) AS n FROM orders"})
        write = await session.call_tool("db_query", {"sql": "DELETE FROM orders"})
        after = await session.call_tool("db_query", {"sql": "SELECT count(*) AS n FROM orders"})
    assert "db_query" in names
    assert "execute" not in " ".join(names)
    assert not is_error(count)
    assert "20" in texts(count)[0]
    assert is_error(write)
    assert texts(write)[0].startswith("denied_by_policy:")
    assert "20" in texts(after)[0], "the refused DELETE removed nothing"


def test_public_interface_without_token_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Serving HTTP on a non-loopback interface without a bearer token exits with the config error code."""
    code = main(["mcp", "serve", "tests/mcp_serve/serve_tools.py:toolset", "--http", "0.0.0.0:0"])
    assert code == 3
    assert "without a bearer token" in capsys.readouterr().err


def test_mcp_serve_config_table(tmp_path: Path) -> None:
    """[mcp.serve] is validated with the rest of bridge.toml: the token must come from the environment."""
    from bridge._errors import ConfigError
    from bridge.cli._config import parse_config

    config = parse_config(
        {"mcp": {"serve": {"http": "127.0.0.1:9000", "token": {"env": "T"}, "allowed_origins": ["https://a.b"]}}},
        {"T": "tok"},
    )
    assert config.mcp_serve.http == ("127.0.0.1", 9000)
    assert config.mcp_serve.token is not None
    assert config.mcp_serve.token.reveal() == "tok"
    with pytest.raises(ConfigError, match="must come from the environment"):
        parse_config({"mcp": {"serve": {"token": "plain"}}}, {})
    with pytest.raises(ConfigError, match=r"mcp\.serve\.http"):
        parse_config({"mcp": {"serve": {"http": "nope:x"}}}, {})
