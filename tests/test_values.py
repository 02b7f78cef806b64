"""Value encoding: what is stored comes back equal and with the same types."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import uuid
from typing import Any, NamedTuple

import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitaru.runtime.values import UnencodableValueError, decode_value, encode_value


class Color(enum.Enum):
    RED = "red"


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class Note:
    text: str
    tags: tuple[str, ...]
    derived: int = dataclasses.field(init=False, default=0)


class Doc(msgspec.Struct):
    title: str
    notes: list[Note]


class Model(pydantic.BaseModel):
    name: str
    when: dt.datetime
    inner: dict[str, int]


def same(value: Any) -> Any:
    return decode_value(encode_value(value))


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner), max_leaves=4)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=4)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.frozensets(hashables, max_size=3)
    ),
    max_leaves=20,
)


class TestRoundTrip:
    @given(values)
    def test_nested_builtins(self, value: Any) -> None:
        """Any nesting of builtins decodes equal, tuples as tuples and sets as sets."""
        decoded = same(value)
        assert decoded == value
        assert type(decoded) is type(value)

    def test_rich_types(self) -> None:
        """Dates, decimals, UUIDs, paths, enums, named tuples and classes keep their types."""
        value = {
            "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "naive": dt.datetime(2026, 1, 2, 3, 4, 5),
            "day": dt.date(2026, 1, 2),
            "clock": dt.time(3, 4),
            "span": dt.timedelta(days=1, microseconds=5),
            "money": decimal.Decimal("1.10"),
            "id": uuid.UUID(int=7),
            "path": pathlib.Path("/tmp/x"),
            "color": Color.RED,
            "point": Point(1, 2),
            "set": {1, 2},
        }
        assert same(value) == value
        assert type(same(value)["point"]) is Point

    def test_dataclass_state_is_kept_exactly(self) -> None:
        """Dataclass fields, including init=False ones, come back as recorded."""
        note = Note("t", ("a",))
        object.__setattr__(note, "derived", 42)
        decoded = same(note)
        assert decoded == note
        assert decoded.derived == 42

    def test_structs_and_pydantic_models(self) -> None:
        """msgspec Structs and pydantic models nest and come back as themselves."""
        doc = Doc("d", [Note("n", ())])
        model = Model(name="m", when=dt.datetime(2026, 1, 1), inner={"a": 1})
        assert same(doc) == doc
        assert same(model) == model
        assert isinstance(same([model])[0], Model)


class TestRefusals:
    def test_unknown_type_names_type_and_place(self) -> None:
        """An unsupported value is refused with its type and where it sits."""
        with pytest.raises(UnencodableValueError) as caught:
            encode_value({"items": [1, object()]})
        assert caught.value.type_name == "builtins.object"
        assert caught.value.where == "['items'][1]"

    def test_local_classes_are_refused(self) -> None:
        """A class defined inside a function cannot be rebuilt later, so it is refused."""

        @dataclasses.dataclass
        class Local:
            x: int

        with pytest.raises(UnencodableValueError, match="inside a function"):
            encode_value(Local(1))

    def test_lambdas_and_local_functions_are_refused(self) -> None:
        """A function that cannot be imported again by name is refused, saying why."""

        def local() -> None:
            pass

        with pytest.raises(UnencodableValueError, match="lambda"):
            encode_value({"f": lambda: 0})
        with pytest.raises(UnencodableValueError, match="inside a function"):
            encode_value([local])
