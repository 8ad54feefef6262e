"""The HTTP package surface: exports are sorted and resolve."""

from __future__ import annotations

import toolkits.http


def test_all_is_sorted_and_complete() -> None:
    """The public names are listed once, sorted, and each resolves."""
    assert toolkits.http.__all__ == sorted(toolkits.http.__all__)
    for name in toolkits.http.__all__:
        assert getattr(toolkits.http, name) is not None


def test_without_httpx2_the_error_names_the_install_command() -> None:
    """Importing the pack without httpx2 raises an ImportError naming `pip install 'tool-bridge[http]'`."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['httpx2'] = None\n"
        "try:\n"
        "    import toolkits.http\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert "pip install 'tool-bridge[http]'" in out.stdout
