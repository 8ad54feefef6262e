"""Agent YAML files, as the `ant` CLI reads them (`ant beta:agents create < support.agent.yaml`).

The file is the agent's create body in YAML: `name`, `model`, `system`, `tools` (and any other create field the user
keeps there). `bridge sync --write` writes one, or updates the custom tools of an existing one in place of the old,
keeping every other key and every non-custom tool.

`ruamel.yaml` (the `yaml` extra) reads and writes them in round-trip mode: what `load` returns is a dict that
remembers its comments, key order and quoting, so `dump` of a loaded-then-edited document keeps the user's comments
and layout; only what changed is rewritten. New text is written deterministically in block style, with literal
blocks for multi-line strings and quotes on strings that YAML 1.1 readers would take for something else (`yes`,
`on`, `1.0`), so a re-sync shows a clean `git diff` whichever YAML reader the `ant` CLI uses. Anchors, aliases, tags
and multi-document streams are refused with a clear message rather than silently expanded.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError

__all__ = ["dump", "load"]

# Plain scalars a YAML 1.1 reader would not read back as the same string.
_YAML11_SPECIAL = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|"
    r"[-+]?(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|"
    r"0x[0-9a-fA-F_]+|0o?[0-7_]+|0b[01_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+)$"
)


def _yaml() -> Any:
    try:
        from ruamel.yaml import YAML
    except ImportError:
        raise ConfigError("agent YAML files need ruamel.yaml: pip install 'tool-bridge[yaml]'") from None
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never fold long lines: a description stays one line, a diff stays one line
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    yaml.representer.add_representer(type(None), _represent_null)  # `null`, not an empty value with a trailing space
    return yaml


def _represent_null(representer: Any, _: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def dump(data: Mapping[str, Any], *, header: str | None = None) -> str:
    """Serialise a mapping as block-style YAML, deterministically (key order is kept).

    A document that came from `load` keeps its comments and formatting. `header` becomes a comment at the top of a
    document that has none yet (so a re-written file does not pile up headers).
    """
    yaml = _yaml()
    document = _to_commented(data)
    if header and not _has_start_comment(document):
        document.yaml_set_start_comment(header)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def _has_start_comment(document: Any) -> bool:
    comment = getattr(document, "ca", None)
    return bool(comment is not None and comment.comment and comment.comment[1])


def _to_commented(value: Any) -> Any:
    """Plain JSON-like data as ruamel's round-trip types, with strings styled so they read back unchanged."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

    if isinstance(value, Mapping):
        out = value if isinstance(value, CommentedMap) else CommentedMap()
        for key, item in list(value.items()):
            out[key] = _to_commented(item)
        return out
    if isinstance(value, list):
        seq = value if isinstance(value, CommentedSeq) else CommentedSeq()
        items = [_to_commented(item) for item in value]
        seq[:] = items
        return seq
    if isinstance(value, str) and type(value) is str:
        if "\n" in value.rstrip("\n") and _literal_safe(value):
            return LiteralScalarString(value)
        if _YAML11_SPECIAL.fullmatch(value):
            return DoubleQuotedScalarString(value)
    return value


def _literal_safe(text: str) -> bool:
    """Whether a literal block reproduces `text` exactly (no tabs or trailing spaces, no leading blank/indent)."""
    if text.startswith((" ", "\n")):
        return False
    return all(ch == "\n" or (ch.isprintable() and ch not in "\t\r") for ch in text) and not any(
        line.endswith(" ") for line in text.split("\n")
    )


def load(text: str, *, source: str = "<yaml>") -> dict[str, Any]:
    """Parse an agent YAML file into a dict that remembers its comments and key order (for `dump`).

    Raises:
        ConfigError: The text is not YAML, not a mapping, or uses anchors, aliases, tags or several documents (with
            the line number).
    """
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = _yaml()
    _refuse_unsupported(yaml, text, source)
    try:
        documents = list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{source}:{line}: {_plain(problem)}") from None
    except YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_plain(str(exc))}") from None
    if len(documents) > 1:
        line = _second_document_line(text)
        raise ConfigError(f"{source}:{line}: several YAML documents in one file are not supported")
    document = documents[0] if documents else None
    if document is None:
        return _to_commented({})  # type: ignore[no-any-return]
    if not isinstance(document, dict):
        raise ConfigError(f"{source}:1: an agent file must be a mapping (name: ..., model: ..., tools: ...)")
    return document


def _refuse_unsupported(yaml: Any, text: str, source: str) -> None:
    """Anchors, aliases and tags would be expanded or typed silently: refuse them, naming the line."""
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent

    try:
        for event in yaml.parse(io.StringIO(text)):
            anchored = isinstance(event, ScalarEvent | CollectionStartEvent) and (
                event.anchor is not None or (event.tag is not None and not _implicit(event))
            )
            if isinstance(event, AliasEvent) or anchored:
                line = event.start_mark.line + 1
                raise ConfigError(f"{source}:{line}: anchors, aliases and tags are not supported")
    except YAMLError:
        return  # a syntax error: `load` reports it with its own line number


def _implicit(event: Any) -> bool:
    implicit = getattr(event, "implicit", None)
    if isinstance(implicit, tuple):
        return any(implicit)
    return bool(implicit)


def _second_document_line(text: str) -> int:
    starts = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("---")]
    return starts[1] if len(starts) > 1 else (starts[0] if starts else 1)


def _plain(message: str) -> str:
    return " ".join(message.split())
