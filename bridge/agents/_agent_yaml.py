"""Agent YAML files, as the `ant` CLI reads them (`ant beta:agents create < support.agent.yaml`).

The file is the agent's create body in YAML: `name`, `model`, `system`, `tools` (and any other create field the user
keeps there). `bridge sync --write` writes one, or updates the custom tools of an existing one in place of the old,
keeping every other key and every non-custom tool.

Why no YAML library: the shape is fixed JSON data, the output must be deterministic so that a re-sync shows a clean
`git diff`, and the daemon should not grow a dependency for one subcommand. `dump` writes block style with literal
blocks for multi-line text; `load` reads that back plus what people write by hand in such files (comments, quoted and
plain scalars, `|`/`>` blocks, flow lists and maps like `required: [city]`). Anchors, tags and multi-document streams
are refused with a clear message rather than misread.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError

__all__ = ["dump", "load"]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_PLAIN_VALUE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/ ,()']*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}
_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$")


def dump(data: Mapping[str, Any], *, header: str | None = None) -> str:
    """Serialise a JSON-like mapping as block-style YAML, deterministically (key order is kept)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    lines.extend(_dump_mapping(data, 0))
    return "\n".join(lines) + "\n"


def _dump_mapping(data: Mapping[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in data.items():
        head = f"{pad}{_key(str(key))}:"
        if isinstance(value, Mapping) and value:
            lines.append(head)
            lines.extend(_dump_mapping(value, indent + 2))
        elif isinstance(value, list) and value:
            lines.append(head)
            lines.extend(_dump_sequence(value, indent + 2))
        elif isinstance(value, str) and _is_block(value):
            lines.extend(_block(head, value, indent + 2))
        else:
            lines.append(f"{head} {_scalar(value)}")
    return lines


def _dump_sequence(items: list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, Mapping) and item:
            inner = _dump_mapping(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
        elif isinstance(item, list) and item:
            lines.append(f"{pad}- {json.dumps(item, ensure_ascii=False)}")
        elif isinstance(item, str) and _is_block(item):
            lines.extend(_block(f"{pad}-", item, indent + 2))
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _is_block(text: str) -> bool:
    return "\n" in text.rstrip("\n") and not text.startswith((" ", "\n")) and _printable(text)


def _printable(text: str) -> bool:
    return all(ch == "\n" or (ch.isprintable() and ch not in "\t\r") for ch in text) and not any(
        line.endswith(" ") for line in text.split("\n")
    )


def _block(head: str, text: str, indent: int) -> list[str]:
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    pad = " " * indent
    lines = [f"{head} |{chomp}"]
    lines.extend(f"{pad}{line}" if line else "" for line in body.split("\n"))
    lines.extend([""] * (trailing - 1 if trailing > 1 else 0))
    return lines


def _key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) and key.lower() not in _RESERVED else json.dumps(key, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    text = str(value)
    if _PLAIN_VALUE.fullmatch(text) and text.lower() not in _RESERVED and not text.endswith(" "):
        return text
    return json.dumps(text, ensure_ascii=False)


def load(text: str, *, source: str = "<yaml>") -> dict[str, Any]:
    """Parse an agent YAML file into a dict.

    Raises:
        ConfigError: The text is not a mapping, or uses YAML this reader does not support (with the line number).
    """
    reader = _Reader(text, source)
    if not reader.lines:
        return {}
    value = reader.block(reader.lines[0][0])
    if reader.pos < len(reader.lines):
        reader.fail("unexpected indentation")
    if not isinstance(value, dict):
        reader.fail("an agent file must be a mapping (name: ..., model: ..., tools: ...)", line=reader.lines[0][2])
    document: dict[str, Any] = value
    return document


class _Reader:
    """An indentation-driven recursive-descent reader over (indent, text, line number) triples."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.raw = text.splitlines()
        self.lines: list[tuple[int, str, int]] = []
        self.pos = 0
        for number, line in enumerate(self.raw, 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
                if stripped == "---" and self.lines:
                    self.fail("several YAML documents in one file are not supported", line=number)
                continue
            if "\t" in line[: len(line) - len(line.lstrip())]:
                self.fail("tabs are not allowed for indentation", line=number)
            self.lines.append((len(line) - len(line.lstrip(" ")), stripped, number))

    def fail(self, message: str, *, line: int | None = None) -> Any:
        if line is None:
            line = self.lines[min(self.pos, len(self.lines) - 1)][2] if self.lines else 1
        raise ConfigError(f"{self.source}:{line}: {message}")

    def block(self, indent: int) -> Any:
        _, text, _ = self.lines[self.pos]
        if text == "-" or text.startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def mapping(self, indent: int, first: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self.pos < len(self.lines):
            line_indent, text, number = self.lines[self.pos]
            if first is not None:
                text, first = first, None
            elif line_indent != indent:
                if line_indent > indent:
                    self.fail("unexpected indentation")
                break
            elif text == "-" or text.startswith("- "):
                break
            key, rest = self.split_key(text, number)
            if key in result:
                self.fail(f"duplicate key {key!r}", line=number)
            self.pos += 1
            result[key] = self.value_after(rest, indent, number, in_mapping=True)
        return result

    def sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while self.pos < len(self.lines):
            line_indent, text, number = self.lines[self.pos]
            if line_indent != indent or not (text == "-" or text.startswith("- ")):
                if line_indent > indent:
                    self.fail("unexpected indentation")
                break
            rest = text[1:].lstrip(" ")
            item_indent = indent + (len(text) - len(rest))
            if rest and not rest.startswith(("'", '"', "[", "{", "|", ">")) and self.find_colon(rest) is not None:
                result.append(self.mapping(item_indent, first=rest))  # "- key: value" opens a mapping
            else:
                self.pos += 1
                result.append(self.value_after(rest, indent, number, in_mapping=False))
        return result

    def value_after(self, rest: str, indent: int, number: int, *, in_mapping: bool) -> Any:
        rest = _strip_comment(rest)
        if rest.startswith(("&", "*", "!")):
            self.fail("anchors, aliases and tags are not supported", line=number)
        if rest[:1] in ("|", ">") and re.fullmatch(r"[|>][-+]?", rest):
            return self.block_scalar(rest, indent, number)
        if rest:
            return _parse_scalar_or_flow(rest, lambda m: self.fail(m, line=number))
        if self.pos < len(self.lines):
            next_indent, next_text, _ = self.lines[self.pos]
            if next_indent > indent:
                return self.block(next_indent)
            if in_mapping and next_indent == indent and (next_text == "-" or next_text.startswith("- ")):
                return self.sequence(indent)  # "key:\n- item": YAML allows the dash at the key's indentation
        return None

    def block_scalar(self, header: str, indent: int, number: int) -> str:
        body: list[str] = []
        raw_index = number  # self.raw is 0-based, so this is the line after the header
        block_indent: int | None = None
        while raw_index < len(self.raw):
            line = self.raw[raw_index]
            if line.strip():
                line_indent = len(line) - len(line.lstrip(" "))
                if line_indent <= indent:
                    break
                block_indent = line_indent if block_indent is None else block_indent
                if line_indent < block_indent:
                    break
                body.append(line[block_indent:])
            else:
                body.append("")
            raw_index += 1
        while self.pos < len(self.lines) and self.lines[self.pos][2] <= raw_index:
            self.pos += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        text = _fold(body) if header[0] == ">" else "\n".join(body)
        chomp = header[1:]
        if chomp == "-" or not body:
            return text
        return text + "\n" * (trailing + 1 if chomp == "+" else 1)

    def split_key(self, text: str, number: int) -> tuple[str, str]:
        colon = self.find_colon(text)
        if colon is None:
            self.fail(f"expected 'key: value', got {text!r}", line=number)
            raise AssertionError  # pragma: no cover
        raw_key = text[:colon].strip()
        if raw_key.startswith(('"', "'")):
            key = _parse_scalar_or_flow(raw_key, lambda m: self.fail(m, line=number))
        else:
            key = raw_key
        return str(key), text[colon + 1 :].strip()

    @staticmethod
    def find_colon(text: str) -> int | None:
        """Index of the `:` ending a mapping key (followed by a space or the end), outside quotes."""
        quote: str | None = None
        for i, ch in enumerate(text):
            if quote:
                if ch == quote and (quote == "'" or text[i - 1] != "\\"):
                    quote = None
            elif ch in "'\"" and i == 0:
                quote = ch
            elif ch == "#" and i > 0 and text[i - 1] == " ":
                return None
            elif ch == ":" and (i + 1 == len(text) or text[i + 1] == " "):
                return i
        return None


def _fold(lines: list[str]) -> str:
    """YAML folding: a single line break becomes a space, each blank line a newline."""
    text = lines[0] if lines else ""
    for previous, line in itertools.pairwise(lines):
        if not line:
            text += "\n"
        elif not previous or line.startswith(" ") or previous.startswith(" "):
            text += ("\n" if previous else "") + line
        else:
            text += " " + line
    return text


def _strip_comment(text: str) -> str:
    quote: str | None = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and (quote == "'" or text[i - 1] != "\\"):
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] == " "):
            return text[:i].rstrip()
    return text.strip()


def _parse_scalar_or_flow(text: str, fail: Any) -> Any:
    parser = _Flow(text, fail)
    value = parser.value(top=True)
    parser.skip_spaces()
    if parser.i != len(text):
        fail(f"unexpected text after a value: {text[parser.i :]!r}")
    return value


class _Flow:
    """Flow values: quoted strings, plain scalars and `[...]` / `{...}` collections (JSON is a subset)."""

    def __init__(self, text: str, fail: Any) -> None:
        self.text = text
        self.i = 0
        self.fail = fail

    def skip_spaces(self) -> None:
        while self.i < len(self.text) and self.text[self.i] == " ":
            self.i += 1

    def value(self, *, top: bool = False) -> Any:
        self.skip_spaces()
        ch = self.text[self.i : self.i + 1]
        if ch == "[":
            return self.collection("]")
        if ch == "{":
            return self.collection("}")
        if ch == '"':
            end = self.i + 1
            while end < len(self.text) and self.text[end] != '"':
                end += 2 if self.text[end] == "\\" else 1
            try:
                value = json.loads(self.text[self.i : end + 1])
            except json.JSONDecodeError:
                self.fail(f"bad double-quoted string: {self.text[self.i : end + 1]!r}")
            self.i = end + 1
            return value
        if ch == "'":
            end = self.i + 1
            while end < len(self.text) and not (self.text[end] == "'" and self.text[end + 1 : end + 2] != "'"):
                end += 2 if self.text[end] == "'" else 1
            if end >= len(self.text):
                self.fail("unterminated single-quoted string")
            value = self.text[self.i + 1 : end].replace("''", "'")
            self.i = end + 1
            return value
        stops = "" if top else ",]}"
        start = self.i
        while self.i < len(self.text) and self.text[self.i] not in stops:
            if not top and self.text[self.i] == ":" and self.text[self.i + 1 : self.i + 2] in (" ", ""):
                break
            self.i += 1
        return _resolve_plain(self.text[start : self.i].strip())

    def collection(self, close: str) -> Any:
        self.i += 1
        items: list[Any] = []
        mapping: dict[str, Any] = {}
        while True:
            self.skip_spaces()
            if self.text[self.i : self.i + 1] == close:
                self.i += 1
                return mapping if close == "}" else items
            if self.i >= len(self.text):
                self.fail(f"unclosed flow collection (expected {close!r}); keep flow collections on one line")
            item = self.value()
            self.skip_spaces()
            if close == "}":
                if self.text[self.i : self.i + 1] != ":":
                    self.fail("expected ':' in a flow mapping")
                self.i += 1
                mapping[str(item)] = self.value()
            else:
                items.append(item)
            self.skip_spaces()
            if self.text[self.i : self.i + 1] == ",":
                self.i += 1


def _resolve_plain(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("null", "~", ""):
        return None
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text
