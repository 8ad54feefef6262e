"""`Toolset`: registry, composition, timeouts, lifecycle of resource tools, and the SDK's tool objects."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from anthropic.lib.tools import beta_async_tool, beta_tool

from bridge import CallResult, DefinitionError, Tool, Toolset, tool

pytestmark = pytest.mark.anyio


@tool(timeout=2)
def search(query: str) -> list[str]:
    """Search the catalog.

    Args:
        query: What to look for.
    """
    return [query]


@tool
async def fetch(id: int) -> dict[str, int]:
    """Fetch one item.

    Args:
        id: The item id.
    """
    return {"id": id}


def test_definitions_are_exact() -> None:
    """`definitions()` is the exact list for `agents.create` / `agents.update`."""
    assert Toolset([search, fetch]).definitions() == [
        {
            "type": "custom",
            "name": "search",
            "description": "Search the catalog.",
            "input_schema": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look for."}},
                "required": ["query"],
                "additionalProperties": False,
            },
        },
        {
            "type": "custom",
            "name": "fetch",
            "description": "Fetch one item.",
            "input_schema": {
                "type": "object",
                "properties": {"id": {"type": "integer", "description": "The item id."}},
                "required": ["id"],
                "additionalProperties": False,
            },
        },
    ]


def test_registry_access() -> None:
    """Lookup, membership, iteration, length and names follow registration order."""
    toolset = Toolset([search])
    added = toolset.add(fetch)
    assert toolset.names() == ["search", "fetch"]
    assert toolset.get("fetch") is added
    assert "search" in toolset
    assert "nope" not in toolset
    assert [t.name for t in toolset] == ["search", "fetch"]
    assert len(toolset) == 2
    with pytest.raises(KeyError):
        toolset.get("nope")


def test_duplicate_names_are_errors() -> None:
    """Two tools with one name are refused, in the constructor and in `add`."""

    def other() -> None:
        """Another search."""

    with pytest.raises(DefinitionError, match="two tools are named 'search'"):
        Toolset([search, Tool.from_function(other, name="search")])
    toolset = Toolset([search])
    with pytest.raises(DefinitionError, match="unique"):
        toolset.add(Tool.from_function(other, name="search"))
    with pytest.raises(DefinitionError, match="unique"):
        Toolset.merge(Toolset([search]), Toolset([search]))


def test_composition() -> None:
    """Prefix, filter, rename and merge return new toolsets and leave the original alone."""
    base = Toolset([search, fetch])
    assert base.with_prefix("shop").names() == ["shop_search", "shop_fetch"]
    assert base.with_prefix("shop-").names() == ["shop-search", "shop-fetch"]
    assert Toolset([search], prefix="db").names() == ["db_search"]
    assert base.filter(lambda t: t.is_async).names() == ["fetch"]
    assert base.rename({"fetch": "get_item"}).names() == ["search", "get_item"]
    assert base.names() == ["search", "fetch"]
    merged = Toolset.merge(base.with_prefix("a"), base.with_prefix("b"))
    assert merged.names() == ["a_search", "a_fetch", "b_search", "b_fetch"]
    assert merged.definitions()[0]["name"] == "a_search"
    with pytest.raises(DefinitionError, match="no such tools"):
        base.rename({"nope": "x"})
    with pytest.raises(DefinitionError, match="two tools named"):
        base.rename({"fetch": "search"})
    with pytest.raises(DefinitionError, match="invalid tool name"):
        base.rename({"fetch": "get item"})


async def test_renamed_tools_report_their_new_name() -> None:
    """A prefixed tool answers under its new name, also in error texts."""
    result = await Toolset([search]).with_prefix("shop").call("shop_search", {"q": 1})
    assert result.is_error
    assert "Invalid input for tool shop_search" in result.text


def test_timeouts_resolve_tool_then_toolset() -> None:
    """A tool's own timeout wins, then the innermost toolset's, then None (the bridge default)."""
    inner = Toolset([search, fetch], timeout=5)
    outer = Toolset([inner, Tool.from_function(fetch, name="fetch2")], timeout=9)
    assert outer.timeout_for("search") == 2
    assert outer.timeout_for("fetch") == 5
    assert outer.timeout_for("fetch2") == 9
    assert Toolset([fetch]).timeout_for("fetch") is None
    assert outer.with_prefix("x").timeout_for("x_fetch") == 5


async def test_call_by_name() -> None:
    """`call` runs the named tool; an unknown name is an error result listing the tools."""
    toolset = Toolset([search, fetch])
    assert await toolset.call("fetch", {"id": 3}) == CallResult.of_text('{"id":3}')
    unknown = await toolset.call("serch", {})
    assert unknown == CallResult.error("unknown tool 'serch'; available tools: search, fetch")


def test_coerce() -> None:
    """`coerce` accepts a function, a Tool, a Toolset, or lists of them."""
    assert Toolset.coerce(search).names() == ["search"]
    assert Toolset.coerce(Tool.from_function(fetch)).names() == ["fetch"]
    toolset = Toolset([search])
    assert Toolset.coerce(toolset) is toolset
    assert Toolset.coerce([toolset, Toolset([fetch])]).names() == ["search", "fetch"]
    with pytest.raises(DefinitionError):
        Toolset("search")


def _resource_tools(events: list[str]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    @tool
    @contextlib.asynccontextmanager
    async def query() -> AsyncIterator[Callable[..., Any]]:
        """Run a query on the shared connection."""
        events.append("open query")

        async def run(sql: str) -> str:
            """Run it.

            Args:
                sql: The statement.
            """
            return f"ran {sql}"

        try:
            yield run
        finally:
            events.append("close query")

    @tool(name="lookup")
    @contextlib.contextmanager
    def lookup_factory() -> Iterator[Callable[..., Any]]:
        """Look a key up in the opened file."""
        events.append("open lookup")

        def lookup(key: str) -> str:
            return key.upper()

        try:
            yield lookup
        finally:
            events.append("close lookup")

    return query, lookup_factory


async def test_context_manager_tools_open_and_close_with_the_toolset() -> None:
    """Resource tools open on `async with toolset` (schema from the yielded function) and close on exit."""
    events: list[str] = []
    query, lookup = _resource_tools(events)
    toolset = Toolset([query, lookup])
    assert toolset.get("query").description == "Run a query on the shared connection."
    with pytest.raises(DefinitionError, match="async with toolset"):
        toolset.definitions()
    closed = await toolset.call("query", {"sql": "select 1"})
    assert closed == CallResult.error("tool query is not available: its resources are not open")
    async with toolset:
        assert events == ["open query", "open lookup"]
        assert toolset.get("query").input_schema["properties"] == {
            "sql": {"type": "string", "description": "The statement."}
        }
        assert toolset.definitions()[1]["description"] == "Look a key up in the opened file."
        assert (await toolset.call("query", {"sql": "select 1"})).text == "ran select 1"
        assert (await toolset.call("lookup", {"key": "k"})).text == "K"
    assert events == ["open query", "open lookup", "close lookup", "close query"]
    assert (await toolset.call("query", {"sql": "x"})).is_error


async def test_lifespans_and_nested_toolsets_open_in_order() -> None:
    """A toolset's lifespan opens first, nested toolsets' resources next, and all close in reverse order."""
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def pool() -> AsyncIterator[None]:
        events.append("open pool")
        yield
        events.append("close pool")

    query, _ = _resource_tools(events)
    inner = Toolset([query], lifespan=pool)
    outer = Toolset([inner.with_prefix("db"), search])
    async with outer:
        assert outer.is_open
        assert (await outer.call("db_query", {"sql": "s"})).text == "ran s"
    assert events == ["open pool", "open query", "close query", "close pool"]
    assert not outer.is_open


async def test_failed_open_closes_what_was_opened() -> None:
    """If one resource fails to open, the ones already open are closed and the error propagates."""
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        raise OSError("database unreachable")
        yield

    query, _ = _resource_tools(events)
    toolset = Toolset([query], lifespan=None)
    toolset = Toolset([toolset, Toolset([], lifespan=broken)])
    with pytest.raises(OSError, match="unreachable"):
        async with toolset:
            pass
    assert events == ["open query", "close query"]


async def test_sdk_beta_tools_are_accepted() -> None:
    """`@beta_tool` / `@beta_async_tool` objects become full tools; dict returns become JSON, not a crash."""

    @beta_tool
    def lookup(key: str) -> Any:
        """Look a key up.

        Args:
            key: The key.
        """
        return {"key": key}

    @beta_async_tool(name="shout")
    async def loud(text: str) -> str:
        """Shout text."""
        return text.upper()

    toolset = Toolset([lookup, loud])
    assert toolset.names() == ["lookup", "shout"]
    assert toolset.get("lookup").input_schema["properties"]["key"] == {"type": "string", "description": "The key."}
    assert (await toolset.call("lookup", {"key": "a"})).text == '{"key":"a"}'
    assert (await toolset.call("shout", {"text": "hi"})).text == "HI"
    bad = await toolset.call("lookup", {"kee": "a"})
    assert '- kee: unknown field; did you mean "key"?' in bad.text


async def test_sdk_tools_with_their_own_schema_are_wrapped() -> None:
    """An SDK tool with a hand-written schema is wrapped: Claude-ready schema, its own validation, its cleanup."""
    closed: list[str] = []

    @beta_async_tool(
        name="raw",
        description="Take a raw payload.",
        input_schema={"type": "object", "title": "Raw", "properties": {"n": {"type": "integer", "title": "N"}}},
    )
    async def raw(**kwargs: Any) -> str:
        return f"n={kwargs['n']}"

    raw.close = lambda: closed.append("closed")
    toolset = Toolset([raw])
    assert toolset.get("raw").input_schema == {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "additionalProperties": False,
    }
    assert (await toolset.call("raw", {"n": 2})).text == "n=2"
    async with toolset:
        pass
    assert closed == ["closed"]


async def test_nested_enter_closes_on_the_outermost_exit() -> None:
    """Entering an open toolset again only counts; resources close when the outermost block exits."""
    events: list[str] = []
    query, _ = _resource_tools(events)
    toolset = Toolset([query])
    async with toolset:
        async with toolset:
            pass
        assert toolset.is_open
        assert events == ["open query"]
    assert events == ["open query", "close query"]


def test_resource_factories_take_no_parameters() -> None:
    """A context-manager tool factory with parameters is refused: they belong on the yielded function."""

    @contextlib.contextmanager
    def factory(dsn: str) -> Iterator[Callable[..., Any]]:
        """Open."""
        yield lambda: None

    with pytest.raises(DefinitionError, match="takes no parameters"):
        Toolset([factory])


def test_an_invalid_approval_policy_fails_at_registration() -> None:
    """`approval=` must be allow/deny/ask, an Approval or a function; anything else is a DefinitionError."""
    from bridge import Approval, DefinitionError, tool

    with pytest.raises(DefinitionError, match="not an approval policy"):
        tool(approval="maybe")  # type: ignore[call-overload]
    with pytest.raises(DefinitionError, match="not an approval policy"):
        Toolset([], approval=42)  # type: ignore[arg-type]
    assert Toolset([], approval=Approval.deny("no")).approval == Approval.deny("no")
