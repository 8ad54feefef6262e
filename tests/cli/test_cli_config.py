"""bridge.toml loading: valid files, secrets by environment reference, and one error listing every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import ConfigError
from bridge.cli._config import Config, JournalSpec, Secret, ToolsetSpec, load_config, parse_config

FULL = """
agent = "agent_01"
sessions = ["sesn_a", "sesn_b"]
timeout = 30
state_dir = "state"

[api]
api_key = { env = "MY_KEY" }
base_url = "http://127.0.0.1:9"

[limits]
max_concurrency = 8
per_session = 2

[timeouts]
drain = 30

[journal]
backend = "sqlite"
path = "state/j.db"

[health]
port = 9464
host = "0.0.0.0"

[toolsets.shop]
use = "toolkits.database:sqlite_toolset"
path = "shop.db"
prefix = "shop_"
dsn = { env = "PG_DSN" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return path


def test_full_config_is_read_into_typed_fields(tmp_path: Path) -> None:
    """Every section of a complete file lands in its typed field, paths as Paths, secrets as Secrets."""
    config = load_config(write(tmp_path, FULL), {"MY_KEY": "k", "PG_DSN": "postgres://x"})
    assert config.agent == "agent_01"
    assert config.sessions == ("sesn_a", "sesn_b")
    assert config.timeout == 30.0
    assert config.state_dir == Path("state")
    assert config.limits == {"max_concurrency": 8, "per_session": 2}
    assert config.timeouts == {"drain": 30}
    assert config.journal == JournalSpec("sqlite", Path("state/j.db"))
    assert (config.health_port, config.health_host) == (9464, "0.0.0.0")
    assert config.api_key == Secret("k", "MY_KEY")
    assert config.base_url == "http://127.0.0.1:9"
    (shop,) = config.toolsets
    assert (shop.name, shop.use, shop.prefix) == ("shop", "toolkits.database:sqlite_toolset", "shop_")
    assert shop.kwargs() == {"path": "shop.db", "dsn": "postgres://x"}


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    """An empty file is valid and equals `Config()` apart from its source."""
    config = load_config(write(tmp_path, ""), {})
    assert config == Config(source=config.source)
    assert config.journal.backend == "sqlite"


def test_secrets_never_show_in_repr() -> None:
    """A resolved secret's value appears in no repr, so logging a config cannot leak it."""
    config = parse_config({"toolsets": [{"use": "m:f", "dsn": {"env": "PG_DSN"}}]}, {"PG_DSN": "hunter2"})
    assert "hunter2" not in repr(config)
    assert config.toolsets[0].kwargs()["dsn"] == "hunter2"


def test_nested_secret_references_are_resolved() -> None:
    """`{ env = ... }` is resolved inside nested tables and lists of toolset options too."""
    config = parse_config(
        {"toolsets": {"t": {"use": "m:f", "headers": {"auth": {"env": "TOKEN"}}, "keys": [{"env": "TOKEN"}]}}},
        {"TOKEN": "abc"},
    )
    assert config.toolsets[0].kwargs() == {"headers": {"auth": "abc"}, "keys": ["abc"]}


def test_toolsets_as_array_of_tables() -> None:
    """`[[toolsets]]` works as well as `[toolsets.NAME]`; an unnamed entry is named after its TARGET."""
    config = parse_config({"toolsets": [{"use": "app.tools:toolset"}]}, {})
    assert config.toolsets == (ToolsetSpec(name="app.tools:toolset", use="app.tools:toolset"),)


def test_every_problem_is_listed_in_one_error(tmp_path: Path) -> None:
    """A file with many mistakes raises one ConfigError naming each of them, with did-you-mean hints."""
    text = """
agnet = "x"
sessions = "sesn_a"
timeout = -1
[limits]
max_concurrency = "lots"
[journal]
backend = "postgres"
[health]
port = 70000
[toolsets.a]
path = "x.db"
[toolsets.b]
use = "m:f"
dsn = { env = "MISSING_VAR" }
[toolsets.c]
use = "m:f"
token = { env = "T", default = "x" }
"""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    problems = info.value.problems
    joined = "\n".join(problems)
    assert "agnet: unknown key (did you mean 'agent'?)" in joined
    assert "sessions: must be a list of strings" in joined
    assert "timeout: must be a positive number" in joined
    assert "limits.max_concurrency: must be a number" in joined
    assert "journal.backend: must be one of sqlite, memory" in joined
    assert "health.port: must be a port number" in joined
    assert "toolsets.a.use: required" in joined
    assert "toolsets.b.dsn: environment variable MISSING_VAR is not set" in joined
    assert "toolsets.c.token: a secret reference is written" in joined
    assert len(problems) == 9
    assert all(p.startswith(str(tmp_path)) for p in problems)


def test_not_toml_is_a_clear_error(tmp_path: Path) -> None:
    """A syntax error names the file and the TOML parser's position."""
    with pytest.raises(ConfigError, match=r"bridge.toml: not valid TOML: .*line 1"):
        load_config(write(tmp_path, "agent = \n"), {})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A config path that does not exist says so."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", {})


def test_memory_journal_with_a_path_is_refused() -> None:
    """A path makes no sense for the memory journal, so it is reported instead of ignored."""
    with pytest.raises(ConfigError, match=r"journal\.path: has no meaning"):
        parse_config({"journal": {"backend": "memory", "path": "x.db"}}, {})
