"""`bridge emulator`: a local Managed Agents API in the foreground that the SDK can use, stopped by SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from anthropic import Anthropic
from bridge_cli_support import ROOT, SAMPLE, Daemon, bridge_env, run_bridge


def test_emulator_serves_the_sdk_and_stops_on_sigterm() -> None:
    """The command prints its URL and key, answers real SDK calls, and exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "emulator", "--port", "0", "--api-key", "sk-test"],
        env=bridge_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Managed Agents emulator on http://127.0.0.1:"), first
        base_url = first.split()[-1]
        assert "ANTHROPIC_API_KEY=sk-test" in proc.stdout.readline()
        with Anthropic(base_url=base_url, api_key="sk-test", max_retries=0) as client:
            agent = client.beta.agents.create(name="a", model="claude-opus-4-7")
            assert client.beta.agents.retrieve(agent.id).name == "a"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()


class Lines:
    """A subprocess's stdout lines, read on a thread so a test can wait for one without blocking forever."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """The first line containing `text`, waiting for it to be printed."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"no line with {text!r}; got:\n" + "\n".join(self.lines))
                self._changed.wait(remaining)


def test_a_scripted_emulator_and_bridge_run_try_a_tools_module_from_the_cli_alone(tmp_path: Path) -> None:
    """`bridge emulator --script`, `bridge sync --create`, `bridge run`: the scripted calls are answered by tools."""
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "messages": ["Add one and two, then forty and two."],
                "turns": [
                    {
                        "calls": [
                            {"tool": "add", "input": {"a": 1, "b": 2}},
                            {"tool": "add", "input": {"a": 40, "b": 2}},
                        ],
                        "reply": "The sums are {0} and {1}.",
                    }
                ],
            }
        )
    )
    emulator = subprocess.Popen(
        [sys.executable, "-m", "bridge", "emulator", "--port", "0", "--script", str(script)],
        env=bridge_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    daemon: Daemon | None = None
    try:
        out = Lines(emulator)
        url = out.wait_for("Managed Agents emulator on ").split()[-1]
        created = run_bridge("sync", SAMPLE, "--emulator", url, "--create", "trial", "--model", "claude-opus-4-7")
        assert created.returncode == 0, created.stderr
        agent_id = created.stdout.split("created agent ", 1)[1].split()[0]
        session_line = out.wait_for(f"agent {agent_id} (trial): opened session ")
        session_id = session_line.split("opened session ", 1)[1].split(";")[0]
        daemon = Daemon([SAMPLE, "--emulator", url, "--agent", agent_id, "--journal", "memory"], {}, tmp_path)
        assert out.wait_for(f"[{session_id}] agent: ") == f"[{session_id}] agent: The sums are 3 and 42."
        assert f'[{session_id}] agent calls add {{"a": 1, "b": 2}}' in out.lines
        assert f"[{session_id}] result: 42" in out.lines
        emulator.send_signal(signal.SIGINT)
        assert emulator.wait(15) == 0
    finally:
        if daemon is not None:
            daemon.kill()
        if emulator.poll() is None:
            emulator.kill()
            emulator.wait()
        if emulator.stdout:
            emulator.stdout.close()


def test_emulator_help_tells_the_truth_about_keys() -> None:
    """`bridge emulator --help` says which key clients must send, and offers the scripted agent."""
    done = run_bridge("emulator", "--help")
    assert "Any API key is accepted" not in done.stdout
    assert "Clients must send its --api-key" in " ".join(done.stdout.split())
    assert "--call TOOL JSON" in done.stdout


def test_a_bad_script_or_call_is_refused_before_serving(tmp_path: Path) -> None:
    """A script with several mistakes lists them all; a --call whose input is not a JSON object exits 3 at once."""
    script = tmp_path / "bad.json"
    script.write_text(json.dumps({"turn": [], "turns": [{"calls": [{"tool": 1}], "reply": 2}]}))
    bad_script = run_bridge("emulator", "--port", "0", "--script", str(script))
    assert bad_script.returncode == 3
    for problem in ("turn: unknown key", "turns[0].calls[0]: expected {tool: NAME", "turns[0].reply: must be a string"):
        assert problem in bad_script.stderr
    bad_call = run_bridge("emulator", "--port", "0", "--call", "add", "[1, 2]")
    assert bad_call.returncode == 3
    assert "--call add: the input must be a JSON object" in bad_call.stderr
