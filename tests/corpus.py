"""A corpus of tool signatures covering every supported hint kind, shared by the schema and property tests.

Each function records the arguments it received (in `RECEIVED`) and returns "ok", so tests can check that what the
model sent reached the function unchanged in meaning.
"""

import dataclasses
import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, Optional
from uuid import UUID

from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from bridge import ToolContext

RECEIVED: dict[str, Any] = {}


def _record(arguments: dict[str, Any]) -> str:
    RECEIVED.clear()
    RECEIVED.update({key: value for key, value in arguments.items() if not isinstance(value, ToolContext)})
    return "ok"


class Color(enum.Enum):
    """A paint color."""

    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    """How urgent."""

    LOW = 1
    HIGH = 2


class Address(BaseModel):
    """A postal address."""

    street: str = Field(description="Street and number.")
    city: str
    zip: str | None = None


class LineItem(BaseModel):
    """One line of an order."""

    sku: str
    quantity: int = Field(1, ge=1)


class Order(BaseModel):
    """An order with its shipping and billing addresses."""

    items: list[LineItem]
    ship_to: Address
    bill_to: Address | None = None


@dataclasses.dataclass
class Point:
    """A point on a plane."""

    x: float
    y: float = 0.0


class Filters(TypedDict):
    """Search filters."""

    status: Literal["open", "closed"]
    owner: NotRequired[str]


class Circle(BaseModel):
    kind: Literal["circle"]
    radius: float


class Square(BaseModel):
    kind: Literal["square"]
    side: float


def no_params() -> str:
    """Ping the service."""
    return _record(locals())


def one_str(text: str) -> str:
    """Echo text.

    Args:
        text: The text to echo.
    """
    return _record(locals())


def primitives(s: str, i: int, f: float, b: bool) -> str:
    """Take one of each primitive."""
    return _record(locals())


def defaults(limit: int = 10, verbose: bool = False, label: str = "x", ratio: float = 0.5) -> str:
    """Take defaults."""
    return _record(locals())


def optional_param(name: str | None = None) -> str:
    """Take an optional name."""
    return _record(locals())


def optional_required(name: Optional[str]) -> str:  # noqa: UP045 - the typing.Optional spelling is the point
    """Take a required but nullable name."""
    return _record(locals())


def union_scalars(value: int | str) -> str:
    """Take an int or a string."""
    return _record(locals())


def literal_param(unit: Literal["c", "f"] = "c") -> str:
    """Take a unit."""
    return _record(locals())


def literal_int(level: Literal[1, 2, 3]) -> str:
    """Take a level."""
    return _record(locals())


def enum_param(color: Color) -> str:
    """Take a color."""
    return _record(locals())


def int_enum(priority: Priority) -> str:
    """Take a priority."""
    return _record(locals())


def list_param(tags: list[str]) -> str:
    """Take tags."""
    return _record(locals())


def dict_param(counts: dict[str, int]) -> str:
    """Take counts."""
    return _record(locals())


def dict_any(meta: dict[str, Any]) -> str:
    """Take free-form metadata."""
    return _record(locals())


def tuple_fixed(point: tuple[float, float]) -> str:
    """Take a pair."""
    return _record(locals())


def tuple_var(ids: tuple[int, ...]) -> str:
    """Take any number of ids."""
    return _record(locals())


def set_param(ids: set[int]) -> str:
    """Take distinct ids."""
    return _record(locals())


def datetime_param(when: datetime) -> str:
    """Take a moment."""
    return _record(locals())


def date_param(day: date) -> str:
    """Take a day."""
    return _record(locals())


def uuid_param(id: UUID) -> str:
    """Take a UUID."""
    return _record(locals())


def decimal_param(amount: Decimal) -> str:
    """Take an amount."""
    return _record(locals())


def model_param(address: Address) -> str:
    """Take an address.

    Args:
        address: Where to ship.
    """
    return _record(locals())


def optional_model(address: Address | None = None) -> str:
    """Take an optional address."""
    return _record(locals())


def list_of_models(items: list[LineItem]) -> str:
    """Take line items."""
    return _record(locals())


def nested_models(order: Order) -> str:
    """Take an order (a model using another model twice)."""
    return _record(locals())


def dataclass_param(point: Point) -> str:
    """Take a point."""
    return _record(locals())


def typeddict_param(filters: Filters) -> str:
    """Take filters."""
    return _record(locals())


def annotated_field(limit: Annotated[int, Field(ge=1, le=100, description="Rows to return.")] = 10) -> str:
    """Take a bounded limit."""
    return _record(locals())


def annotated_str(query: Annotated[str, "What to search for."]) -> str:
    """Search."""
    return _record(locals())


def field_default(limit: int = Field(10, ge=1, description="Rows to return.")) -> str:
    """Take a limit declared with a Field default."""
    return _record(locals())


def string_constraints(code: Annotated[str, Field(min_length=2, max_length=8, pattern="^[A-Z]+$")]) -> str:
    """Take a code."""
    return _record(locals())


def list_constraints(values: Annotated[list[int], Field(min_length=1, max_length=5)]) -> str:
    """Take a few values."""
    return _record(locals())


def tagged_union(shape: Annotated[Circle | Square, Field(discriminator="kind")]) -> str:
    """Take a shape."""
    return _record(locals())


def var_kwargs(name: str, **labels: str) -> str:
    """Take a name and any string labels."""
    return _record(locals())


def context_anywhere(ctx: ToolContext, query: str, *, limit: int = 5) -> str:
    """Search with a context first and a keyword-only limit."""
    return _record(locals())


def keyword_only(*, a: int, b: str = "x") -> str:
    """Take keyword-only arguments."""
    return _record(locals())


def numpy_doc(a: int, b: str) -> str:
    """Take documented arguments (NumPy style).

    Parameters
    ----------
    a : int
        The first.
    b : str
        The second.
    """
    return _record(locals())


def rest_doc(a: int, b: str) -> str:
    """Take documented arguments (reST style).

    :param a: The first.
    :param b: The second.
    """
    return _record(locals())


def precedence(
    a: Annotated[int, Field(description="From Field.")], b: Annotated[int, "From Annotated."], c: int
) -> str:
    """Show description precedence.

    Args:
        a: From the docstring.
        b: From the docstring.
        c: From the docstring.
    """
    return _record(locals())


def any_param(value: Any) -> str:
    """Take anything."""
    return _record(locals())


def nested_list(matrix: list[list[float]]) -> str:
    """Take a matrix."""
    return _record(locals())


def optional_list(tags: list[str] | None = None) -> str:
    """Take optional tags."""
    return _record(locals())


CORPUS = [
    no_params,
    one_str,
    primitives,
    defaults,
    optional_param,
    optional_required,
    union_scalars,
    literal_param,
    literal_int,
    enum_param,
    int_enum,
    list_param,
    dict_param,
    dict_any,
    tuple_fixed,
    tuple_var,
    set_param,
    datetime_param,
    date_param,
    uuid_param,
    decimal_param,
    model_param,
    optional_model,
    list_of_models,
    nested_models,
    dataclass_param,
    typeddict_param,
    annotated_field,
    annotated_str,
    field_default,
    string_constraints,
    list_constraints,
    tagged_union,
    var_kwargs,
    context_anywhere,
    keyword_only,
    numpy_doc,
    rest_doc,
    precedence,
    any_param,
    nested_list,
    optional_list,
]
