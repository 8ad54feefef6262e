"""The sync diff and merge: by name, order-insensitive, non-custom tools never touched."""

from __future__ import annotations

from typing import Any

from bridge.agents._sync import diff_tools, merge_tools


def custom(name: str, description: str = "Does a thing.", **props: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {k: {"type": v} for k, v in props.items()}}
    return {"type": "custom", "name": name, "description": description, "input_schema": schema}


BUILTIN = {"type": "agent_toolset_20260401", "default_config": {"enabled": True}, "configs": []}
MCP = {"type": "mcp_toolset", "mcp_server_name": "github"}


def test_identical_definitions_in_another_order_are_no_change() -> None:
    """Reordering tools or schema keys is not a change worth a new agent version."""
    remote = [BUILTIN, custom("b", x="string"), custom("a")]
    local = [custom("a"), custom("b", x="string")]
    local[1]["input_schema"] = dict(reversed(list(local[1]["input_schema"].items())))
    diff = diff_tools(remote, local)
    assert not diff
    assert diff.unchanged == ("a", "b")
    assert diff.render() == "no changes: 2 custom tool(s) already match"


def test_added_removed_and_changed_are_told_apart() -> None:
    """Each tool is added, removed or changed (with the fields that differ); non-custom tools are ignored."""
    remote = [BUILTIN, custom("keep"), custom("old"), custom("edit", "Old text.", q="string"), MCP]
    local = [custom("keep"), custom("new"), custom("edit", "New text.", q="integer")]
    diff = diff_tools(remote, local)
    assert [c.name for c in diff.added] == ["new"]
    assert [c.name for c in diff.removed] == ["old"]
    assert [(c.name, c.fields) for c in diff.changed] == [("edit", ("description", "input_schema"))]
    assert diff.unchanged == ("keep",)
    assert diff.summary() == "+1 added, -1 removed, ~1 changed, 1 unchanged"


def test_render_shows_a_unified_diff_of_changed_tools() -> None:
    """The rendered diff has one line per tool and the JSON lines that changed."""
    diff = diff_tools([custom("edit", "Old text.")], [custom("edit", "New text."), custom("new")])
    text = diff.render(agent_label="agent_1@v3")
    assert "~ edit (description changed)" in text
    assert '    -  "description": "Old text.",\n    +  "description": "New text.",' in text
    assert "--- agent_1@v3/edit" in text
    assert "+ new (new)" in text
    assert text.endswith("+1 added, -0 removed, ~1 changed, 0 unchanged")


def test_merge_keeps_non_custom_tools_untouched_and_in_place() -> None:
    """The merged list keeps built-in and MCP entries exactly as read, then the local custom tools."""
    remote = [BUILTIN, custom("old"), MCP]
    merged = merge_tools(remote, [custom("a"), custom("b")])
    assert merged == [BUILTIN, MCP, custom("a"), custom("b")]
    assert merged[0] is not BUILTIN  # copies: the caller's data is never mutated


def test_extra_response_fields_do_not_count_as_changes() -> None:
    """Only name, description and input_schema are compared; other keys the API may echo are ignored."""
    remote = [{**custom("a"), "cache_control": None}]
    assert not diff_tools(remote, [custom("a")])
