"""The escape corpus: every way out of a root we know of, run through openat2 and the portable walk.

Each attack runs against every tool it applies to. Afterwards nothing outside the root has changed (content hash,
mtime and link count of every canary) and no answer carries a canary's text or /etc/passwd's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from files_support import SECRET, answer, snapshot

from bridge import CallResult, Toolset
from toolkits.files import files_toolset

pytestmark = pytest.mark.anyio

READERS = ("fs_read", "fs_stat", "fs_list", "fs_grep", "fs_find")


@pytest.fixture
def anyio_backend() -> str:
    """The corpus is about the filesystem, not the event loop: asyncio only."""
    return "asyncio"


@pytest.fixture
def hostile(root: Path, outside: Path) -> Path:
    """The root, salted with links, hard links and special files that point out of it."""
    (root / "link_file").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "link_rel").symlink_to("../outside")
    (root / "link_slash").symlink_to("/")
    (root / "link_proc").symlink_to("/proc")
    (root / "link_self").symlink_to("/proc/self/root")
    (root / "dangling").symlink_to(outside / "created-through-a-link.txt")
    (root / "docs" / "up").symlink_to("../..")
    os.link(outside / "secret.txt", root / "hardlink.txt")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()
    with contextlib.suppress(PermissionError):
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return root


@pytest.fixture
def served(hostile: Path, outside: Path, use_openat2: bool) -> Iterator[Toolset]:
    """The hostile root served writable; on teardown, the outside world is exactly as it was."""
    before = snapshot(outside)
    passwd = Path("/etc/passwd").read_bytes()
    yield files_toolset({"root": hostile}, writable=True, use_openat2=use_openat2)
    assert snapshot(outside) == before
    assert Path("/etc/passwd").read_bytes() == passwd
    assert not (outside / "created-through-a-link.txt").exists()


def _leaks(result: CallResult) -> bool:
    return SECRET in result.text or "root:x:0:0" in result.text


ESCAPES = [
    "..",
    "../outside/secret.txt",
    "docs/../../outside/secret.txt",
    "./../outside/secret.txt",
    "a.txt/../../outside/secret.txt",
    "../root_evil/secret.txt",
    "/etc/passwd",
    "//etc/passwd",
    "/proc/self/root/etc/passwd",
    "C:/Windows/win.ini",
    "..\\outside\\secret.txt",
    "link_file",
    "link_dir/secret.txt",
    "link_dir/sub/secret.txt",
    "link_rel/secret.txt",
    "link_slash/etc/passwd",
    "link_proc/self/root/etc/passwd",
    "link_self/etc/passwd",
    "docs/up/outside/secret.txt",
    "dangling",
    "hardlink.txt",
    "fifo",
    "sock",
    "null",
    "a.txt\x00.png",
    "a.txt\n",
    *(
        LOOKALIKES := [
            "\uff0e\uff0e\uff0foutside\uff0fsecret.txt",  # fullwidth ．．／ stays a (missing) name: no normalisation
            "\u2024\u2024/outside/secret.txt",  # one-dot leaders
            "..\u2215outside\u2215secret.txt",  # division slash
            "LINK_FILE",  # case: a different (missing) name on a case-sensitive disk
        ]
    ),
    "\u202e..",  # right-to-left override
    "a\u200b/../../outside/secret.txt",  # zero-width space
    "docs/READme.md/../../../outside/secret.txt",
]


@pytest.mark.parametrize("path", ESCAPES)
async def test_no_tool_reads_outside_the_root(served: Toolset, path: str) -> None:
    """Every read-side tool refuses or stays inside for each escape path; no canary text ever comes back."""
    for name in READERS:
        args = {"path": path}
        if name == "fs_grep":
            args["pattern"] = "CANARY|root:x"
        if name == "fs_find":
            args["glob"] = "*"
        result = await served.call(name, args)
        assert not _leaks(result), (name, path, result.text)


@pytest.mark.parametrize("path", ESCAPES)
async def test_no_write_or_edit_lands_outside(served: Toolset, path: str) -> None:
    """write (create, replace, create_dirs) and edit are refused for each escape path and change nothing outside."""
    forged = "0" * 64
    calls = [
        ("fs_write", {"path": path, "content": "pwned"}),
        ("fs_write", {"path": path, "content": "pwned", "expected_sha256": forged}),
        ("fs_write", {"path": f"{path}/new.txt", "content": "pwned", "create_dirs": True}),
        ("fs_edit", {"path": path, "edits": [{"old": "CANARY", "new": "pwned"}]}),
    ]
    for name, args in calls:
        result = await served.call(name, args)
        assert not _leaks(result), (name, path, result.text)
        if path in LOOKALIKES:
            continue  # an ordinary name inside the root: creating it is fine (the teardown checks the outside)
        assert result.is_error, (name, path, result.text)


async def test_the_whole_tree_never_shows_what_is_outside(served: Toolset) -> None:
    """Listing, finding and grepping the entire root at full depth reach nothing behind a link."""
    for name, args in (
        ("fs_list", {"depth": 8, "include_hidden": True}),
        ("fs_find", {"glob": "*secret*", "include_hidden": True}),
        ("fs_grep", {"pattern": "CANARY|root:x", "include_hidden": True}),
    ):
        result = await served.call(name, args)
        assert not result.is_error, result.text
        assert not _leaks(result)
        assert "outside/" not in result.text


async def test_links_and_special_files_are_listed_as_such(served: Toolset) -> None:
    """A listing names links, FIFOs, sockets and devices by type; the hard-linked file shows its link count."""
    result = await served.call("fs_list", {})
    text = result.text
    assert '"path": "link_dir", "type": "symlink"' in text
    assert '"path": "fifo", "type": "fifo"' in text
    assert '"path": "sock", "type": "socket"' in text
    assert '"links": 2' in text


async def test_a_fifo_never_blocks(served: Toolset) -> None:
    """Reading, stat-ing and grepping a FIFO with no writer returns at once (the pytest timeout would catch a hang)."""
    for name, args in (("fs_read", {"path": "fifo"}), ("fs_stat", {"path": "fifo"}), ("fs_grep", {"pattern": "x"})):
        result = await served.call(name, args)
        assert "fifo" in result.text or not result.is_error


async def test_symlinked_directory_swapped_during_reads(root: Path, outside: Path, use_openat2: bool) -> None:
    """A directory flipped to a link to the outside (and back) while reads and writes run never lets one through."""
    before = snapshot(outside)
    (root / "sub").mkdir()
    (root / "sub" / "secret.txt").write_text("inside\n")
    toolset = files_toolset({"root": root}, writable=True, use_openat2=use_openat2)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            os.rename(root / "sub", root / "parked")
            os.symlink(outside, root / "sub")
            os.unlink(root / "sub")
            os.rename(root / "parked", root / "sub")
            for _ in range(50):  # stay in place for a few syscalls, so both states are seen
                os.stat(root)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for i in range(300):
            read = await toolset.call("fs_read", {"path": "sub/secret.txt"})
            assert SECRET not in read.text
            write = await toolset.call("fs_write", {"path": f"sub/new{i}.txt", "content": "x"})
            assert SECRET not in write.text
    finally:
        stop.set()
        flipper.join()
    assert snapshot(outside) == before
    settled = await toolset.call("fs_read", {"path": "sub/secret.txt"})
    assert "inside" in settled.text  # the directory is back in place and served again


async def test_file_swapped_for_a_link_during_reads(root: Path, outside: Path, use_openat2: bool) -> None:
    """A file flipped to a link to an outside secret (and back) during reads and edits never leaks or writes through."""
    before = snapshot(outside)
    (root / "target.txt").write_text("inside\n")
    toolset = files_toolset({"root": root}, writable=True, use_openat2=use_openat2)
    stop = threading.Event()

    def flip() -> None:
        steps = (
            lambda: os.rename(root / "target.txt", root / "parked.txt"),
            lambda: os.symlink(outside / "secret.txt", root / "target.txt"),
            lambda: os.unlink(root / "target.txt"),
            lambda: os.rename(root / "parked.txt", root / "target.txt"),
        )
        while not stop.is_set():
            for step in steps:
                with contextlib.suppress(OSError):  # an edit may have replaced the entry meanwhile: go on flipping
                    step()

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for _ in range(300):
            read = await toolset.call("fs_read", {"path": "target.txt"})
            assert SECRET not in read.text
            edit = await toolset.call("fs_edit", {"path": "target.txt", "edits": [{"old": "in", "new": "IN"}]})
            assert SECRET not in edit.text
    finally:
        stop.set()
        flipper.join()
    assert snapshot(outside) == before


async def test_hard_links_allowed_only_when_the_operator_says_so(root: Path, outside: Path) -> None:
    """allow_hardlinks serves a multi-link file for reading; writes still replace the entry, never the outside file."""
    os.link(outside / "secret.txt", root / "shared.txt")
    before = snapshot(outside)
    toolset = files_toolset({"root": root}, writable=True, allow_hardlinks=True)
    read = await toolset.call("fs_read", {"path": "shared.txt"})
    assert SECRET in read.text  # the operator's choice, documented
    write = await toolset.call("fs_write", {"path": "shared.txt", "content": "x", "expected_sha256": "0" * 64})
    assert write.is_error
    assert snapshot(outside) == before


async def test_denylist_matches_the_unicode_spellings_a_case_insensitive_filesystem_folds(root: Path) -> None:
    """On APFS or an ext4/tmpfs casefold directory, `id_rſa` (long s), `.ſsh` and `server.\u212aey` (Kelvin sign)
    name the same files as `id_rsa`, `.ssh` and `server.key`. Here (case-sensitive) they are distinct files holding
    the secret, which stands for what such a filesystem would open: none is listed, read, searched or written."""
    spellings = ("id_r\u017fa", "server.\u212aey", ".git-credential\u017f")
    for name in spellings:
        (root / name).write_text("TOKEN=hunter2\n")
    (root / ".\u017fsh").mkdir()
    (root / ".\u017fsh" / "config").write_text("TOKEN=hunter2\n")
    toolset = files_toolset({"root": root}, writable=True)
    listing = await toolset.call("fs_list", {"include_hidden": True, "depth": 3})
    for name in spellings:
        assert name not in listing.text
    for path in (*spellings, ".\u017fsh/config"):
        result = await toolset.call("fs_read", {"path": path})
        assert result.is_error, path
        assert "denylist" in result.text
    grep = await toolset.call("fs_grep", {"pattern": "hunter2", "include_hidden": True})
    assert answer(grep)[1] == []
    write = await toolset.call("fs_write", {"path": ".\u017fsh/authorized_keys", "content": "ssh-ed25519 AAAA evil\n"})
    assert write.is_error
    assert "denylist" in write.text


async def test_denylisted_names_are_hidden_and_refused(root: Path) -> None:
    """.env, keys and .ssh are never listed, read or written, whatever their case; .git is read-only."""
    (root / ".env").write_text("TOKEN=hunter2\n")
    (root / ".ENV.local").write_text("TOKEN=hunter2\n")
    (root / "server.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (root / ".ssh").mkdir()
    (root / ".ssh" / "id_ed25519").write_text("key\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    toolset = files_toolset({"root": root}, writable=True)
    listing = await toolset.call("fs_list", {"include_hidden": True, "depth": 3})
    assert ".env" not in listing.text.replace('"skipped"', "")
    assert "pem" not in listing.text
    assert "id_ed25519" not in listing.text
    for path in (".env", ".ENV.local", "server.pem", ".ssh/id_ed25519", ".SSH/id_ed25519"):
        result = await toolset.call("fs_read", {"path": path})
        assert result.is_error
        assert "hunter2" not in result.text
    grep = await toolset.call("fs_grep", {"pattern": "hunter2|PRIVATE", "include_hidden": True})
    assert answer(grep)[1] == []
    assert (await toolset.call("fs_read", {"path": ".git/config"})).is_error is False
    write = await toolset.call("fs_write", {"path": ".git/hooks/pre-commit", "content": "x", "create_dirs": True})
    assert write.is_error
    assert "denylist" in write.text


@pytest.mark.parametrize(
    "path", [".envrc", ".pgpass", ".npmrc", ".pypirc", ".vault-token", ".kube/config", ".docker/config.json", "a.jks"]
)
async def test_common_credential_files_are_denied_by_default(root: Path, path: str) -> None:
    """Credential files tools commonly leave in a project or home directory are refused like .env."""
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text("secret=hunter2\n")
    toolset = files_toolset({"root": root})
    result = await toolset.call("fs_read", {"path": path})
    assert result.is_error
    assert "hunter2" not in result.text


async def test_huge_files_are_paged_never_slurped(root: Path) -> None:
    """A 10 GiB sparse file: reads return one capped page with next_offset; no hash; grep skips it."""
    huge = root / "huge.log"
    with huge.open("wb") as f:
        f.write(b"line one\n" * 1000)
        f.truncate(10 * 1024**3)
    toolset = files_toolset({"root": root}, limits={"max_read_bytes": 4096})
    read = await toolset.call("fs_read", {"path": "huge.log"})
    header = read.text.partition("\n")[0]
    assert '"next_offset": 4095' in header or '"next_offset": 4096' in header
    assert '"sha256": null' in header
    assert len(read.text) < 6000
    grep = await toolset.call("fs_grep", {"pattern": "line one"})
    assert '"count": 0' in grep.text
    assert "larger than" in grep.text
    lines = await toolset.call("fs_read", {"path": "huge.log", "start_line": 2, "end_line": 3})
    assert not lines.is_error
    assert "line one\nline one" in lines.text
