"""`bridge tools`, the parser and exit codes, run as a subprocess like a user would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def test_tools_prints_definitions_as_json_and_lint_on_stderr(run_bridge: Any, sample_target: str) -> None:
    """stdout is exactly the definitions list (pipeable), stderr the lint report with sizes."""
    done = run_bridge("tools", sample_target)
    assert done.returncode == 0, done.stderr
    definitions = json.loads(done.stdout)
    assert [d["name"] for d in definitions] == ["add", "slow"]
    assert all(d["type"] == "custom" and d["input_schema"]["type"] == "object" for d in definitions)
    assert "add: " in done.stderr
    assert "bytes" in done.stderr
    assert "2 tool(s)" in done.stderr


def test_tools_from_a_config_file(tmp_path: Path, cli: Any, sample_target: str) -> None:
    """Toolsets named in bridge.toml are loaded with their prefix."""
    config = tmp_path / "bridge.toml"
    config.write_text(f'[toolsets.math]\nuse = "{sample_target}"\nprefix = "m_"\n')
    done = cli("tools", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert [d["name"] for d in json.loads(done.stdout)] == ["m_add", "m_slow"]


def test_bad_target_exits_3_with_a_clear_message(run_bridge: Any) -> None:
    """A TARGET that cannot be imported exits with the config code and says why, without a traceback."""
    done = run_bridge("tools", "no_such_module:toolset")
    assert done.returncode == 3
    assert "bridge: error: TARGET 'no_such_module:toolset': no module named 'no_such_module'" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_config_exits_3_listing_every_problem(tmp_path: Path, cli: Any) -> None:
    """An invalid bridge.toml exits 3 and lists each problem."""
    config = tmp_path / "bridge.toml"
    config.write_text('timeout = "soon"\n[toolsets.x]\nprefix = 1\n')
    done = cli("tools", "--config", str(config))
    assert done.returncode == 3
    assert "timeout: must be a positive number" in done.stderr
    assert "toolsets.x.use: required" in done.stderr


def test_nothing_to_serve_is_a_config_error(cli: Any) -> None:
    """Without a TARGET or a config, the command says what to give."""
    done = cli("tools")
    assert done.returncode == 3
    assert "nothing to serve" in done.stderr


def test_usage_errors_exit_2_and_help_lists_exit_codes(cli: Any) -> None:
    """argparse errors exit 2; every command's help documents the exit codes."""
    assert cli("run", "--max-concurrency", "0").returncode == 2
    assert cli("frobnicate").returncode == 2
    helped = cli("run", "--help")
    assert helped.returncode == 0
    assert "exit codes:" in helped.stdout
    assert "drain" in helped.stdout


def test_tools_refuses_the_config_typos_that_run_refuses(tmp_path: Path, cli: Any, sample_target: str) -> None:
    """`bridge tools --config` checks [limits]/[timeouts] names like `bridge run`: same file, same exit 3 and text."""
    config = tmp_path / "bridge.toml"
    config.write_text("[limits]\nmax_concurency = 3\n[timeouts]\ndrian = 2\n")
    tools = cli("tools", sample_target, "--config", str(config))
    run = cli("run", sample_target, "--session", "s", "--config", str(config), env={"ANTHROPIC_API_KEY": "k"})
    assert tools.returncode == run.returncode == 3
    assert "limits.max_concurency: unknown limit (did you mean 'max_concurrency'?)" in tools.stderr
    assert "timeouts.drian: unknown timeout (did you mean 'drain'?)" in tools.stderr
    assert tools.stderr == run.stderr
