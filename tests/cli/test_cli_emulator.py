"""`bridge emulator`: a local Managed Agents API in the foreground that the SDK can use, stopped by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

from anthropic import Anthropic
from bridge_cli_support import ROOT, bridge_env


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
