"""The files tools, closures over one `Space`, built into a `Toolset`.

Every answer is a JSON header line (what was read, sizes, hashes, whether it was cut) followed by the content inside
the untrusted-data boundary: file text, file names and diffs were written by someone else and may carry instructions.
Read tools are `read_only` and `idempotent`; `write` and `edit` exist only when a root is writable, are `destructive`
and not idempotent (the runtime never re-runs them after a crash), and take `expected_sha256` so a retry by the model
cannot overwrite a change it has not seen.

No `from __future__ import annotations`: the annotations use local values (the caps) and are evaluated here.
"""

import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from bridge import Tool, ToolContext, Toolset

from .._fence import fence
from ._read import read_text, stat_entry
from ._space import Space
from ._walk import find, grep, list_dir
from ._write import Edit, edit_file, write_file

__all__ = ["build_toolset"]


def _answer(header: dict[str, Any], body: Any, root: str) -> str:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, indent=None)
    return json.dumps(header, ensure_ascii=False) + "\n" + fence(text, source=f"files under the root {root!r}")


def _probe(ctx: ToolContext) -> Callable[[], bool]:
    return lambda: ctx.cancelled


def build_toolset(space: Space, *, name: str, prefix: str | None, timeout: float) -> Toolset:
    """The tools over `space`, named `<prefix>_<tool>` (`fs_read`, ...)."""
    limits = space.limits
    roots = list(space.roots)
    default = roots[0]
    RootName = Annotated[str | None, Field(description=f"One of: {', '.join(roots)} (default {default}).")]
    Path = Annotated[str, Field(description="Relative to the root, '/'-separated; '' or '.' is the root itself.")]
    MaxBytes = Annotated[int | None, Field(ge=1, le=limits.max_read_bytes)]
    Depth = Annotated[int, Field(ge=1, le=limits.max_depth)]
    ListLimit = Annotated[int | None, Field(ge=1, le=limits.max_list_entries)]
    GrepLimit = Annotated[int | None, Field(ge=1, le=limits.max_grep_matches)]
    Sha = Annotated[str | None, Field(pattern=r"^[0-9a-fA-F]{64}$")]

    def list_roots() -> str:
        """List the directories you can read (and which you can write), with the caps on reads and listings."""
        data = {
            "roots": [{"name": r.name, "writable": r.writable} for r in space.roots.values()],
            "default_root": default,
            "caps": {
                "max_read_bytes": limits.max_read_bytes,
                "max_list_entries": limits.max_list_entries,
                "max_depth": limits.max_depth,
                "max_grep_matches": limits.max_grep_matches,
                "max_write_bytes": limits.max_write_bytes,
            },
            "rules": "paths are relative to a root; symbolic links, special files and files with several hard links "
            "are not served; some secret-looking names (.env, keys) are hidden",
        }
        return json.dumps(data)

    def list_entries(
        ctx: ToolContext,
        path: Path = "",
        root: RootName = None,
        depth: Depth = 1,
        glob: str | None = None,
        include_hidden: bool = False,
        limit: ListLimit = None,
    ) -> str:
        """List a directory's entries (name, type, size, modification time), sorted by path.

        Args:
            path: The directory.
            root: The root the path is in.
            depth: 1 lists the directory; more descends into subdirectories.
            glob: Only entries whose name matches, e.g. "*.md" ('*' also crosses '/' when the glob has a '/').
            include_hidden: Also list names starting with a dot.
            limit: The most entries to return.
        """
        header, found = list_dir(
            space,
            root,
            path,
            depth=depth,
            glob=glob,
            include_hidden=include_hidden,
            limit=limit,
            cancelled=_probe(ctx),
        )
        return _answer(header, found, header["root"])

    def stat(path: Path, root: RootName = None) -> str:
        """Describe one file or directory: type, size, modification time, link count, and sha256 of a file.

        Args:
            path: The file or directory.
            root: The root the path is in.
        """
        info = stat_entry(space, root, path)
        return _answer({"root": info["root"], "path": path}, info, info["root"])

    def read(
        path: Path,
        root: RootName = None,
        offset: Annotated[int, Field(ge=0)] = 0,
        max_bytes: MaxBytes = None,
        start_line: Annotated[int | None, Field(ge=1)] = None,
        end_line: Annotated[int | None, Field(ge=1)] = None,
    ) -> str:
        """Read a UTF-8 text file, by byte offset or by line range; binary files are refused with their size.

        The header line gives the file's size and sha256 and, when more remains, next_offset to continue from.

        Args:
            path: The file.
            root: The root the path is in.
            offset: Start at this byte (use next_offset from the previous page).
            max_bytes: The most bytes to return.
            start_line: Read lines from this one (1-based) instead of by offset.
            end_line: The last line to read (inclusive).
        """
        header, text = read_text(
            space, root, path, offset=offset, max_bytes=max_bytes, start_line=start_line, end_line=end_line
        )
        return _answer(header, text, header["root"])

    def find_files(
        ctx: ToolContext,
        glob: str,
        path: Path = "",
        root: RootName = None,
        include_hidden: bool = False,
        limit: ListLimit = None,
    ) -> str:
        """Find files and directories by name at any depth below a directory.

        Args:
            glob: Matched against the name ("*.py", "README*"); with a '/', against the path below `path`.
            path: Where to start.
            root: The root the path is in.
            include_hidden: Also search names starting with a dot.
            limit: The most matches to return.
        """
        header, found = find(
            space, root, path, glob=glob, include_hidden=include_hidden, limit=limit, cancelled=_probe(ctx)
        )
        return _answer(header, found, header["root"])

    def grep_files(
        ctx: ToolContext,
        pattern: str,
        path: Path = "",
        root: RootName = None,
        glob: str | None = None,
        ignore_case: bool = False,
        include_hidden: bool = False,
        limit: GrepLimit = None,
    ) -> str:
        """Search the text of files below a directory for a regular expression; returns matching lines.

        Args:
            pattern: A Python regular expression, searched in each line.
            path: Where to start.
            root: The root the path is in.
            glob: Only files whose name matches, e.g. "*.py".
            ignore_case: Match regardless of case.
            include_hidden: Also search names starting with a dot.
            limit: The most matching lines to return.
        """
        header, found = grep(
            space,
            root,
            path,
            pattern=pattern,
            glob=glob,
            ignore_case=ignore_case,
            include_hidden=include_hidden,
            limit=limit,
            cancelled=_probe(ctx),
        )
        return _answer(header, found, header["root"])

    def write(
        path: Path,
        content: str,
        root: RootName = None,
        expected_sha256: Sha = None,
        create_dirs: bool = False,
        dry_run: bool = False,
    ) -> str:
        """Create a text file, or replace one; replacing needs the sha256 of the content you read.

        Use dry_run=true first to see the diff. The write is atomic: readers see the old or the new file.

        Args:
            path: The file.
            content: The whole new content (UTF-8 text).
            root: A writable root.
            expected_sha256: The current file's sha256 (from read or stat); required to replace a file.
            create_dirs: Create missing parent directories.
            dry_run: Only show what would change.
        """
        header, diff = write_file(
            space, root, path, content, expected_sha256=expected_sha256, create_dirs=create_dirs, dry_run=dry_run
        )
        return _answer(header, diff, header["root"])

    def edit(
        path: Path,
        edits: Annotated[list[Edit], Field(min_length=1, max_length=100)],
        root: RootName = None,
        expected_sha256: Sha = None,
        dry_run: bool = False,
    ) -> str:
        """Replace exact text in a file; every edit must match exactly `count` times or nothing changes.

        Use dry_run=true first to see the diff.

        Args:
            path: The file.
            edits: Replacements applied in order.
            root: A writable root.
            expected_sha256: Refuse the edit unless the file still has this sha256.
            dry_run: Only show the diff.
        """
        header, diff = edit_file(space, root, path, edits, expected_sha256=expected_sha256, dry_run=dry_run)
        return _answer(header, diff, header["root"])

    def reader(fn: Callable[..., Any], tool_name: str) -> Tool:
        return Tool.from_function(fn, name=tool_name, read_only=True, idempotent=True, timeout=timeout)

    tools = [
        reader(list_roots, "list_roots"),
        reader(list_entries, "list"),
        reader(stat, "stat"),
        reader(read, "read"),
        reader(find_files, "find"),
        reader(grep_files, "grep"),
    ]
    if any(r.writable for r in space.roots.values()):
        for fn, tool_name in ((write, "write"), (edit, "edit")):
            tools.append(Tool.from_function(fn, name=tool_name, destructive=True, idempotent=False, timeout=timeout))
    return Toolset(tools, name=name, prefix=prefix or None)
