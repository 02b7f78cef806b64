"""Views as JSON: the fast conversion gives exactly what the plain rules give.

``to_dict()`` and ``-o json`` turn views into builtins through ``_jsonable``, which
takes the common types by their exact type first. The rules it must keep are written
out plainly below (``by_the_rules``); generated values mixing every kind a view holds
(scalars, enums, datetimes, Structs, view dataclasses, dicts with any keys, lists,
tuples and their subclasses) convert the same both ways.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from kitaru.client._views import _SCALARS, _jsonable, _plain, _public_fields


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


class Mood(enum.StrEnum):
    CALM = "calm"


class Point(msgspec.Struct):
    x: int
    label: str = ""
    at: dt.datetime | None = None


@dataclass(frozen=True)
class View:
    name: str
    value: Any
    _hidden: Any = None


class Bag(dict[str, Any]):
    pass


class Row(list[Any]):
    pass


def by_the_rules(value: Any) -> Any:
    """Plain builtins first, then public dataclass fields, containers and times."""
    if type(value) in _SCALARS:
        return value
    value = _plain(value)
    names = _public_fields(type(value))
    if names is not None:
        return {name: by_the_rules(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): by_the_rules(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [by_the_rules(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


_times = st.datetimes(timezones=st.just(dt.UTC))
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.sampled_from([Colour.RED, Colour.BLUE, Mood.CALM]),
    _times,
    st.builds(Point, st.integers(), st.text(max_size=3), st.none() | _times),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.lists(inner, max_size=4).map(Row),
        st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=4),
        st.dictionaries(st.text(max_size=3), inner, max_size=4).map(Bag),
        st.builds(View, st.text(max_size=3), inner, inner),
    ),
    max_leaves=20,
)


@given(_values)
def test_the_fast_conversion_keeps_the_rules(value: Any) -> None:
    assert _jsonable(value, False) == by_the_rules(value)


def test_a_view_s_private_fields_stay_out() -> None:
    assert _jsonable(View("a", Colour.RED, _hidden="secret"), False) == {
        "name": "a",
        "value": "red",
    }
