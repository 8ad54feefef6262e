"""Agent YAML files (the `ant` CLI's format): deterministic output that reads back, and hand-written YAML."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import ConfigError
from bridge.agents._agent_yaml import dump, load

AGENT: dict[str, Any] = {
    "name": "support",
    "model": "claude-opus-4-7",
    "system": "You are helpful.\n\nBe brief.\n",
    "tools": [
        {"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabled": False}]},
        {
            "type": "custom",
            "name": "query",
            "description": "Run one query: SELECT only # really",
            "input_schema": {
                "type": "object",
                "properties": {
                    "sql": {"type": "string", "description": "héllo \"quoted\" 'single'"},
                    "mode": {"enum": ["yes", "no", "1", 2, 2.5, None, True, ""]},
                    "nested": {"type": "array", "prefixItems": [[1, 2], []]},
                },
                "required": ["sql"],
                "additionalProperties": False,
            },
        },
    ],
    "metadata": {},
    "200": "numeric key",
    "trailing": "one line\n",
    "number_like": "12\n",
}


def test_dump_then_load_round_trips() -> None:
    """Whatever `dump` writes, `load` reads back equal: reserved words, numbers, quotes, nesting, empties."""
    assert load(dump(AGENT)) == AGENT


def test_dump_is_block_style_and_deterministic() -> None:
    """The output is readable block YAML with a literal block for multi-line text, and identical on each call."""
    text = dump(AGENT, header="written by bridge sync")
    assert text == dump(AGENT, header="written by bridge sync")
    assert text.startswith("# written by bridge sync\nname: support\nmodel: claude-opus-4-7\nsystem: |\n")
    assert "  - type: custom\n    name: query\n" in text
    assert '- "yes"' in text  # would read back as a boolean in YAML 1.1 if left plain


@pytest.mark.parametrize(
    "text",
    ["a\nb", "a\nb\n", "a\nb\n\n\n", "line\n  indented\nend", "x\n\ny"],
)
def test_multiline_strings_keep_their_trailing_newlines(text: str) -> None:
    """Literal blocks use the chomping indicator that restores the exact trailing newlines."""
    assert load(dump({"system": text, "after": 1})) == {"system": text, "after": 1}


def test_hand_written_yaml_is_read() -> None:
    """Comments, flow collections, quoted keys, folded blocks and `key:` followed by an unindented list all work."""
    text = """
# my agent
name: support   # the display name
model: {id: claude-opus-4-7, speed: fast}
"description": 'it''s fine'
system: >
  Answer briefly
  and politely.

  Never guess.
tools:
- type: agent_toolset_20260401
- type: custom
  name: get_weather
  input_schema: {"type": "object", "required": [city], "properties": {city: {type: string}}}
empty:
"""
    assert load(text) == {
        "name": "support",
        "model": {"id": "claude-opus-4-7", "speed": "fast"},
        "description": "it's fine",
        "system": "Answer briefly and politely.\nNever guess.\n",
        "tools": [
            {"type": "agent_toolset_20260401"},
            {
                "type": "custom",
                "name": "get_weather",
                "input_schema": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}},
            },
        ],
        "empty": None,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: &a x\nother: *a\n", "anchors, aliases and tags"),
        ("name: x\n---\nname: y\n", "several YAML documents"),
        ("- a\n- b\n", "must be a mapping"),
        ("name: x\n   bad: indent\n", "unexpected indentation"),
        ("name: [a, b\n", "unclosed flow collection"),
        ("name: x\nname: y\n", "duplicate key 'name'"),
    ],
)
def test_unsupported_or_broken_yaml_fails_with_a_line_number(text: str, message: str) -> None:
    """What the reader does not support, or cannot make sense of, is refused with `file:line: reason`."""
    with pytest.raises(ConfigError, match=message) as info:
        load(text, source="a.agent.yaml")
    assert str(info.value).startswith("a.agent.yaml:")
