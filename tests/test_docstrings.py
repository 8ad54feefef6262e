"""Docstrings -> tool and parameter descriptions, in Google, NumPy and reST styles."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from bridge import DefinitionError, Tool
from bridge.tools._docstrings import ParsedDocstring, parse_docstring

GOOGLE = """Refund part of an order.

    The amount is taken from the original payment method
    and cannot exceed what was paid.
    Args:
        order_id: The order to refund.
        amount_cents: How much to refund,
            in cents.

    Returns:
        The refund record.

    Raises:
        ToolError: When the order does not exist.
    """

NUMPY = """Refund part of an order.

    Parameters
    ----------
    order_id : str
        The order to refund.
    amount_cents : int
        How much to refund, in cents.

    Returns
    -------
    dict
        The refund record.
    """

REST = """Refund part of an order.

    :param order_id: The order to refund.
    :param amount_cents: How much to refund, in cents.
    :returns: The refund record.
    """


def test_google_style() -> None:
    """Summary and body become the description (wrapped lines joined); Args become parameter descriptions."""
    parsed = parse_docstring(GOOGLE)
    assert parsed == ParsedDocstring(
        description="Refund part of an order.\n\n"
        "The amount is taken from the original payment method and cannot exceed what was paid.",
        params={"order_id": "The order to refund.", "amount_cents": "How much to refund, in cents."},
    )


@pytest.mark.parametrize("doc", [NUMPY, REST], ids=["numpy", "rest"])
def test_numpy_and_rest_styles(doc: str) -> None:
    """NumPy and reST docstrings give the same descriptions; Returns sections are left out."""
    parsed = parse_docstring(doc)
    assert parsed.description == "Refund part of an order."
    assert parsed.params == {"order_id": "The order to refund.", "amount_cents": "How much to refund, in cents."}


def test_no_docstring() -> None:
    """No docstring parses to nothing."""
    assert parse_docstring(None) == ParsedDocstring()
    assert parse_docstring("   ") == ParsedDocstring()


def test_lists_in_the_body_are_kept() -> None:
    """Bulleted lines are not joined into one paragraph."""
    parsed = parse_docstring("Do things.\n\nModes:\n- fast\n- safe\n")
    assert parsed.description == "Do things.\n\nModes:\n- fast\n- safe"


def test_description_precedence() -> None:
    """`Field(description=)` > `Annotated[T, "text"]` > docstring, and `description=` overrides the docstring."""

    def f(
        a: Annotated[int, Field(description="From Field.")],
        b: Annotated[int, "From Annotated."],
        c: int,
        d: int = Field(1, description="From default Field."),
    ) -> None:
        """From the docstring.

        Args:
            a: Doc a.
            b: Doc b.
            c: Doc c.
            d: Doc d.
        """

    tool = Tool.from_function(f, description="Overridden.")
    props = tool.input_schema["properties"]
    assert [props[name]["description"] for name in "abcd"] == [
        "From Field.",
        "From Annotated.",
        "Doc c.",
        "From default Field.",
    ]
    assert tool.description == "Overridden."


def test_missing_description_is_refused() -> None:
    """A tool with no docstring and no `description=` is refused at registration."""

    def silent(x: int) -> int:
        return x

    with pytest.raises(DefinitionError, match="no description"):
        Tool.from_function(silent)


def test_lint_notes_undocumented_and_stray_parameters() -> None:
    """The lint report notes parameters without a description and documented names that are not parameters."""

    def f(a: int, b: int) -> None:
        """Do it.

        Args:
            a: Documented.
            z: Not a parameter.
        """

    messages = [str(issue) for issue in Tool.from_function(f).lint.issues]
    assert "note: b: no description: document it in the docstring's Args" in messages
    assert "note: z: documented in the docstring but not a parameter" in messages
