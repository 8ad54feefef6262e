"""The files toolset as the model uses it: names, hints, reads by page and line, listings, searches, writes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from files_support import answer

from bridge import ConfigError, Toolset
from toolkits.files import FileLimits, files_toolset

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """Sync tools in worker threads: one backend is enough here."""
    return "asyncio"


@pytest.fixture
def files(root: Path) -> Toolset:
    """The sample root, writable, under the default prefix."""
    return files_toolset({"root": root}, writable=True)


def test_names_and_truthful_hints(root: Path) -> None:
    """Read-only roots get six read-only idempotent tools; a writable root adds destructive write and edit."""
    ro = files_toolset(root)
    assert ro.names() == ["fs_list_roots", "fs_list", "fs_stat", "fs_read", "fs_find", "fs_grep"]
    assert all(t.options.read_only and t.options.idempotent for t in ro)
    rw = files_toolset(root, writable=True)
    for name in ("fs_write", "fs_edit"):
        options = rw.get(name).options
        assert (options.read_only, options.idempotent, options.destructive) == (False, False, True)
    assert all(tool.lint.issues == () for tool in rw)


def test_bad_configuration_fails_at_registration(tmp_path: Path) -> None:
    """A missing root, clashing names, an unknown writable root or a bad limit raise ConfigError listing each."""
    with pytest.raises(ConfigError) as caught:
        files_toolset([tmp_path / "missing", tmp_path, tmp_path], writable=["nope"])
    assert len(caught.value.problems) == 3
    with pytest.raises(ConfigError):
        files_toolset(tmp_path, limits={"max_read_bytes": 0})
    with pytest.raises(ConfigError):
        files_toolset(tmp_path, limits={"max_reed_bytes": 10})


async def test_read_is_fenced_and_carries_size_and_hash(files: Toolset, root: Path) -> None:
    """A read returns the text inside the untrusted boundary with the file's size and sha256."""
    header, body = answer(await files.call("fs_read", {"path": "docs/readme.md"}))
    data = (root / "docs" / "readme.md").read_bytes()
    assert body == data.decode()
    assert header["sha256"] == hashlib.sha256(data).hexdigest()
    assert (header["size"], header["truncated"]) == (len(data), False)


async def test_pages_never_split_a_character(root: Path) -> None:
    """Paging by bytes through multi-byte text reassembles exactly, each page valid UTF-8."""
    text = "héllo wörld ✓ " * 50
    (root / "u.txt").write_text(text)
    toolset = files_toolset(root, limits=FileLimits(max_read_bytes=7))
    offset, pieces = 0, []
    while True:
        header, body = answer(await toolset.call("fs_read", {"path": "u.txt", "offset": offset}))
        pieces.append(body)
        if "next_offset" not in header:
            break
        offset = header["next_offset"]
    assert "".join(pieces) == text


async def test_line_ranges(files: Toolset) -> None:
    """start_line/end_line return exactly those lines; past the end is a clear error."""
    header, body = answer(await files.call("fs_read", {"path": "a.txt", "start_line": 2, "end_line": 3}))
    assert body == "beta\ngamma"
    assert (header["start_line"], header["end_line"]) == (2, 3)
    header, body = answer(await files.call("fs_read", {"path": "a.txt", "start_line": 3}))
    assert (body, header["end_line"]) == ("gamma", 3)
    result = await files.call("fs_read", {"path": "a.txt", "start_line": 4})
    assert result.is_error
    assert "past the end" in result.text


async def test_binary_and_directories_get_clear_messages(files: Toolset) -> None:
    """A binary file is refused with its size; a directory is pointed at the list tool; a missing file says so."""
    binary = await files.call("fs_read", {"path": "blob.bin"})
    assert binary.is_error
    assert "binary file" in binary.text
    directory = await files.call("fs_read", {"path": "docs"})
    assert directory.is_error
    assert "list tool" in directory.text
    missing = await files.call("fs_read", {"path": "nope.txt"})
    assert missing.is_error
    assert "does not exist" in missing.text


async def test_list_depth_glob_hidden_and_limit(files: Toolset) -> None:
    """Listings are sorted, follow depth, glob and hidden settings, and say when they were cut."""
    _, top = answer(await files.call("fs_list", {}))
    assert [e["path"] for e in top] == ["a.txt", "blob.bin", "docs"]
    _, deep = answer(await files.call("fs_list", {"depth": 3, "glob": "*.py"}))
    assert [e["path"] for e in deep] == ["docs/deep/note.py"]
    _, hidden = answer(await files.call("fs_list", {"include_hidden": True}))
    assert ".hidden" in [e["path"] for e in hidden]
    header, cut = answer(await files.call("fs_list", {"limit": 2}))
    assert len(cut) == 2
    assert header["truncated"]
    _, sub = answer(await files.call("fs_list", {"path": "docs"}))
    assert [e["path"] for e in sub] == ["docs/deep", "docs/readme.md"]


async def test_find_and_grep(files: Toolset) -> None:
    """find matches names at any depth; grep returns path, line number and text, skipping binary files."""
    _, found = answer(await files.call("fs_find", {"glob": "*.md"}))
    assert [e["path"] for e in found] == ["docs/readme.md"]
    header, matches = answer(await files.call("fs_grep", {"pattern": "beta"}))
    assert [(m["path"], m["line"]) for m in matches] == [
        ("a.txt", 2),
        ("docs/deep/note.py", 1),
        ("docs/deep/note.py", 2),
    ]
    assert header["count"] == 3
    bad = await files.call("fs_grep", {"pattern": "("})
    assert bad.is_error
    assert "regular expression" in bad.text


async def test_stat_reports_type_links_and_hash(files: Toolset, root: Path) -> None:
    """stat gives type, size, link count and sha256 without following anything."""
    _, info = answer(await files.call("fs_stat", {"path": "a.txt"}))
    assert (info["type"], info["links"], info["size"]) == ("file", 1, 17)
    assert info["sha256"] == hashlib.sha256((root / "a.txt").read_bytes()).hexdigest()
    _, top = answer(await files.call("fs_stat", {"path": ""}))
    assert top["type"] == "directory"


async def test_write_create_preview_then_apply(files: Toolset, root: Path) -> None:
    """A dry run shows the diff and writes nothing; the real write creates the file atomically, no temp left."""
    header, diff = answer(
        await files.call("fs_write", {"path": "new/n.txt", "content": "hi\n", "dry_run": True, "create_dirs": True})
    )
    assert header["dry_run"]
    assert "+hi" in diff
    assert not (root / "new").exists()
    refused = await files.call("fs_write", {"path": "new/n.txt", "content": "hi\n"})
    assert refused.is_error
    assert "create_dirs" in refused.text
    header, _ = answer(await files.call("fs_write", {"path": "new/n.txt", "content": "hi\n", "create_dirs": True}))
    assert header["created"]
    assert (root / "new" / "n.txt").read_text() == "hi\n"
    assert sorted(os.listdir(root / "new")) == ["n.txt"]


async def test_overwrite_needs_the_current_hash(files: Toolset, root: Path) -> None:
    """Replacing a file needs its current sha256: missing or stale hashes are conflicts and change nothing."""
    current = hashlib.sha256((root / "a.txt").read_bytes()).hexdigest()
    missing = await files.call("fs_write", {"path": "a.txt", "content": "x"})
    assert missing.is_error
    assert current in missing.text
    stale = await files.call("fs_write", {"path": "a.txt", "content": "x", "expected_sha256": "1" * 64})
    assert stale.is_error
    assert (root / "a.txt").read_text() == "alpha\nbeta\ngamma\n"
    mode = (root / "a.txt").stat().st_mode
    answer(await files.call("fs_write", {"path": "a.txt", "content": "x", "expected_sha256": current}))
    assert (root / "a.txt").read_text() == "x"
    assert (root / "a.txt").stat().st_mode == mode


async def test_edit_exact_counts_and_preview(files: Toolset, root: Path) -> None:
    """Edits must match exactly count times; a dry run returns the diff; the edit applies all or nothing."""
    ambiguous = await files.call("fs_edit", {"path": "docs/deep/note.py", "edits": [{"old": "beta", "new": "b"}]})
    assert ambiguous.is_error
    assert "occurs 2 times" in ambiguous.text
    edits = [{"old": "beta", "new": "delta", "count": 2}]
    header, diff = answer(await files.call("fs_edit", {"path": "docs/deep/note.py", "edits": edits, "dry_run": True}))
    assert "-def beta():" in diff
    assert "+def delta():" in diff
    assert header["written"] is False
    answer(await files.call("fs_edit", {"path": "docs/deep/note.py", "edits": edits}))
    assert (root / "docs" / "deep" / "note.py").read_text() == "def delta():\n    return 'delta'\n"


async def test_read_only_roots_refuse_writes(root: Path, tmp_path: Path) -> None:
    """With several roots, only the named writable ones accept writes; the model picks a root by name."""
    other = tmp_path / "other"
    other.mkdir()
    toolset = files_toolset({"docs": root, "scratch": other}, writable=["scratch"])
    refused = await toolset.call("fs_write", {"path": "x.txt", "content": "x", "root": "docs"})
    assert refused.is_error
    assert "read-only" in refused.text
    answer(await toolset.call("fs_write", {"path": "x.txt", "content": "x", "root": "scratch"}))
    assert (other / "x.txt").exists()
    assert not (root / "x.txt").exists()
    unknown = await toolset.call("fs_list", {"root": "nope"})
    assert unknown.is_error
    assert "docs, scratch" in unknown.text


def test_configured_from_bridge_toml(root: Path, tmp_path: Path) -> None:
    """A [toolsets.NAME] table with use = "toolkits.files:files_toolset" serves the pack under its prefix."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[toolsets.docs]\nuse = "toolkits.files:files_toolset"\nroots = {{ docs = "{root}" }}\n'
        'writable = ["docs"]\nprefix = "docs"\nlimits = { max_read_bytes = 1000 }\n'
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "bridge", "tools", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=repo,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert '"name": "docs_read"' in out.stdout
    assert '"name": "docs_edit"' in out.stdout
    assert '"maximum": 1000' in out.stdout


async def test_grep_backtracking_pattern_is_killed_at_the_deadline_without_freezing_the_bridge(root: Path) -> None:
    """A catastrophic pattern (`(a+)+$` on a long run of a's) runs out of process: the call ends at
    max_grep_seconds with a timeout, and the event loop kept running meanwhile (in-process `re` holds the GIL)."""
    import itertools
    import time

    import anyio

    (root / "bomb.txt").write_text("a" * 64 + "!\n")
    files = files_toolset({"root": root}, limits=FileLimits(max_grep_seconds=2))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await anyio.sleep(0.05)

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        result = await files.call("fs_grep", {"pattern": "(a+)+$", "glob": "bomb.txt"})
        tg.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    assert result.is_error
    assert result.text.startswith("timeout")
    assert elapsed < 10
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 1.0, max(gaps)
    header, matches = answer(await files.call("fs_grep", {"pattern": "(a+)+!$", "glob": "bomb.txt"}))
    assert header["count"] == 1
    assert matches[0]["line"] == 1


async def test_edit_amplification_is_refused_before_it_is_built(files: Toolset, root: Path) -> None:
    """1000 one-character matches each replaced by a large text would build a string of gigabytes before the
    size check; the projected size is refused first."""
    (root / "many.txt").write_text("x" * 1000)
    import tracemalloc

    big = "y" * 200_000
    tracemalloc.start()
    try:
        result = await files.call("fs_edit", {"path": "many.txt", "edits": [{"old": "x", "new": big, "count": 1000}]})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024, peak  # not the 200 MB string the edit would have built
    assert result.is_error
    assert "cap" in result.text
    assert (root / "many.txt").read_text() == "x" * 1000
