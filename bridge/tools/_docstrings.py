"""Docstring -> tool description and parameter descriptions (Google, NumPy and reST styles).

The model reads the description to decide when to call a tool and the parameter descriptions to fill its input, so
both come from the docstring the developer already writes. The summary and body become the tool description; the
Args / Parameters / `:param:` sections become parameter descriptions and are left out of the tool description.
Returns, Raises and Examples sections are left out too: they describe the Python function, not what the model sends.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

import docstring_parser

__all__ = ["ParsedDocstring", "parse_docstring"]

_WRAPPED_LINE = re.compile(r"(?<=\S)\n(?!\d+[.)]\s)(?=[^\n\s*+-])")


@dataclass(frozen=True)
class ParsedDocstring:
    """What a docstring says about a tool.

    Attributes:
        description: Summary and body, paragraphs kept, sections removed; "" when there is no docstring.
        params: Parameter name -> description, single-spaced.
    """

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _unwrap(text: str) -> str:
    """Join hard-wrapped lines of one paragraph (keeps blank lines and bullet items)."""
    return _WRAPPED_LINE.sub(" ", text.strip())


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Parse a docstring in any of the common styles, detected automatically.

    Args:
        doc: The raw `__doc__`, or None.
    """
    if not doc or not doc.strip():
        return ParsedDocstring()
    cleaned = inspect.cleandoc(doc)
    try:
        parsed = docstring_parser.parse(cleaned)
    except docstring_parser.ParseError:
        return ParsedDocstring(description=cleaned)
    parts = [part for part in (parsed.short_description, parsed.long_description) if part]
    description = "\n\n".join(_unwrap(part) for part in parts)
    params = {p.arg_name: _unwrap(p.description) for p in parsed.params if p.description and p.description.strip()}
    # NumPy/Google allow "x, y : int" for several parameters sharing one description.
    for name in list(params):
        if "," in name:
            for single in (n.strip() for n in name.split(",")):
                params.setdefault(single, params[name])
    return ParsedDocstring(description=description, params=params)
