"""Value encoding: what is stored comes back equal and with the same types."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import socket
import uuid
import zoneinfo
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import RUNS, assert_same_value, storable_values

from kitaru.runtime.values import UnencodableValueError, decode_value, encode_value

OLD_FORMAT = (
    "c80175049b92a3646f63c7520692af746573745f76616c7565733a446f6382a57469746c65a164a56e6f7465"
    "7391c72e0592b0746573745f76616c7565733a4e6f746583a474657874a16ea474616773c7030191a161a764"
    "6572697665640092a56d6f64656cc7470792b1746573745f76616c7565733a4d6f64656c83a46e616d65a16d"
    "a47768656ec71a0ab9323032362d30312d30315430303a30303a30302b30303a3030a5696e6e657281a16101"
    "92a470616972c7340192c7170992b1746573745f76616c7565733a436f6c6f72a3726564c7160892b1746573"
    "745f76616c7565733a506f696e7492010292a3736574d502910192a56d6f6e6579c7050ea4312e313092a269"
    "64c7120fc4100000000000000000000000000000000792a470617468c71a1092b1706174686c69623a506f73"
    "697850617468a62f746d702f7892a3646179c70b0baa323032362d30312d303292a47370616ed60d93010000"
    "92a5636c6f636bc7090ca830333a30343a30309202d5039103"
)
"""A dict of every kind of value, as the encoding before _OBJECT wrote it (dataclass,
Struct and pydantic extension codes included)."""


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


validations: list[str] = []
"""Appended to by the validators and ``__post_init__`` below: decoding must not add."""


class Validated(pydantic.BaseModel):
    items: list[str]

    @pydantic.field_validator("items")
    @classmethod
    def _append(cls, items: list[str]) -> list[str]:
        validations.append("Validated")
        return [*items, "checked"]


class Counted(msgspec.Struct, frozen=True):
    name: str
    size: int = 0

    def __post_init__(self) -> None:
        validations.append("Counted")


@dataclasses.dataclass
class WithExtra:
    items: list[int]

    def __post_init__(self) -> None:
        validations.append("WithExtra")
        self.total = sum(self.items)


class Account:
    """A plain class whose ``__init__`` has a side effect and whose state is custom."""

    def __init__(self, owner: str):
        validations.append("Account")
        self.owner = owner
        self.history: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"owner": self.owner, "history": self.history}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.restored = True


class Node:
    def __init__(self, name: str):
        self.name = name
        self.parent: Node | None = None
        self.children: list[Node] = []


def module_level_function(x: int) -> int:
    return x + 1


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


class TestExactState:
    def test_pydantic_validators_do_not_run_again(self) -> None:
        """A validator that appends runs once, when the model is made, not on decode."""
        model = Validated(items=["a"])
        validations.clear()
        decoded = same(model)
        assert decoded.items == ["a", "checked"]
        assert decoded == model
        assert validations == []

    def test_msgspec_post_init_does_not_run_again(self) -> None:
        """A Struct is rebuilt field by field; its ``__post_init__`` does not run on decode."""
        record = Counted("r", 3)
        validations.clear()
        assert same(record) == record
        assert type(same(record)) is Counted
        assert validations == []

    def test_dataclass_attributes_set_in_post_init_are_kept(self) -> None:
        """Attributes that are not fields survive, and ``__post_init__`` does not run."""
        value = WithExtra([1, 2])
        value.total = 99  # state that __post_init__ would compute differently
        validations.clear()
        decoded = same(value)
        assert decoded.total == 99
        assert decoded.items == [1, 2]
        assert validations == []

    def test_zoneinfo_datetimes_keep_their_zone(self) -> None:
        """A ZoneInfo datetime stays in its zone: arithmetic across DST gives the right offset."""
        paris = zoneinfo.ZoneInfo("Europe/Paris")
        winter = dt.datetime(2026, 1, 15, 9, 30, tzinfo=paris)
        decoded = same(winter)
        assert type(decoded.tzinfo) is zoneinfo.ZoneInfo
        assert decoded.tzinfo.key == "Europe/Paris"
        summer = decoded + dt.timedelta(days=120)
        assert summer.utcoffset() == dt.timedelta(hours=2)
        assert summer == winter + dt.timedelta(days=120)

    def test_fold_and_fixed_offsets_are_kept(self) -> None:
        """An ambiguous local time keeps its fold; a named fixed offset keeps its name."""
        paris = zoneinfo.ZoneInfo("Europe/Paris")
        second = dt.datetime(2026, 10, 25, 2, 30, tzinfo=paris, fold=1)
        assert same(second).fold == 1
        assert same(second).utcoffset() == dt.timedelta(hours=1)
        named = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
        assert same(dt.time(9, tzinfo=named)).tzinfo.tzname(None) == "IST"

    @pytest.mark.parametrize(
        "number",
        [2**64, -(2**63) - 1, 10**5000, -(7**6000)],
        ids=["2^64", "min-1", "10^5000", "-7^6000"],
    )
    def test_integers_of_any_size(self, number: int) -> None:
        """Integers beyond 64 bits (and beyond str()'s digit limit) come back exactly."""
        assert same(number) == number
        assert same({"n": [number]}) == {"n": [number]}

    @pytest.mark.parametrize(
        "text",
        ["\ud83d", "cut emoji \ud83d", "\udc80\udcff", "ok \U0001f600 then \ud800"],
        ids=["alone", "cut", "escaped-bytes", "mixed"],
    )
    def test_strings_with_lone_surrogates(self, text: str) -> None:
        """Any str, a truncated emoji included, comes back exactly, as values and as keys."""
        assert same(text) == text
        nested = {text: [text, (text,)], "plain": text}
        assert same(nested) == nested

    def test_plain_classes_use_their_pickle_protocol_without_init(self) -> None:
        """A plain object is rebuilt by ``__setstate__``; its ``__init__`` does not run."""
        account = Account("ann")
        account.history.append("opened")
        validations.clear()
        decoded = same(account)
        assert type(decoded) is Account
        assert (decoded.owner, decoded.history, decoded.restored) == ("ann", ["opened"], True)
        assert validations == []

    def test_stdlib_objects_and_module_level_functions(self) -> None:
        """Objects of importable classes, and functions by reference, round-trip."""
        value = {
            "ordered": collections.OrderedDict(b=1, a=2),
            "default": collections.defaultdict(list, {"k": [1]}),
            "counts": collections.Counter("aab"),
            "queue": collections.deque([1, 2], maxlen=5),
            "number": complex(1, -2),
            "function": module_level_function,
        }
        decoded = same(value)
        assert decoded == value
        assert decoded["default"].default_factory is list
        assert decoded["queue"].maxlen == 5
        assert decoded["function"] is module_level_function

    def test_moderate_nesting_round_trips(self) -> None:
        """Values nested well within the limit come back whole."""
        value: Any = "leaf"
        for level in range(60):
            value = [value] if level % 2 else {"k": (value,)}
        assert same(value) == value


class TestOldEncodings:
    def test_values_written_by_the_previous_format_still_decode(self) -> None:
        """Bytes encoded before objects went through their pickle protocol decode as before."""
        old = bytes.fromhex(OLD_FORMAT)
        decoded = decode_value(old)
        assert decoded["doc"] == Doc("d", [Note("n", ("a",))])
        assert decoded["model"] == Model(
            name="m", when=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), inner={"a": 1}
        )
        assert decoded["pair"] == (Color.RED, Point(1, 2))
        assert decoded["set"] == {1}
        assert decoded["money"] == decimal.Decimal("1.10")
        assert decoded["path"] == pathlib.Path("/tmp/x")
        assert decoded["clock"] == dt.time(3, 4)
        assert decoded[2] == frozenset({3})

    def test_a_struct_field_added_since_gets_its_default(self) -> None:
        """A Struct recorded before a field was added decodes with that field's default."""
        path = f"{Counted.__module__}:Counted"
        old = msgspec.msgpack.encode(
            msgspec.msgpack.Ext(6, msgspec.msgpack.encode([path, {"name": "r"}]))
        )
        validations.clear()
        assert decode_value(old) == Counted("r", 0)
        validations.clear()
        decode_value(old)
        assert validations == []


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

    def test_resources_are_refused_with_their_type_and_place(self, tmp_path: Path) -> None:
        """Open files, sockets and generators are refused, naming the type and the path."""
        with open(tmp_path / "f.txt", "w", encoding="utf-8") as file, socket.socket() as sock:
            cases = {
                "_io.TextIOWrapper": {"out": [file]},
                "socket.socket": {"out": [sock]},
                "builtins.generator": {"out": [(i for i in range(3))]},
            }
            for type_name, value in cases.items():
                with pytest.raises(UnencodableValueError) as caught:
                    encode_value(value)
                assert caught.value.type_name == type_name
                assert caught.value.where == "['out'][0]"

    def test_an_unstorable_attribute_is_named_by_its_path(self) -> None:
        """The path runs through object attributes down to what cannot be stored."""
        account = Account("ann")
        account.history.append(lambda: 0)  # type: ignore[arg-type]
        with pytest.raises(UnencodableValueError) as caught:
            encode_value({"account": account})
        assert caught.value.where == "['account'].history[0]"
        assert caught.value.type_name.endswith("<lambda>")

    def test_self_referencing_values_are_refused_clearly(self) -> None:
        """A list that contains itself, or a parent/child link, is refused as a cycle."""
        loop: list[Any] = [1]
        loop.append(loop)
        with pytest.raises(UnencodableValueError, match="contains itself") as caught:
            encode_value({"loop": loop})
        assert caught.value.where == "['loop'][1]"
        root, child = Node("root"), Node("child")
        child.parent = root
        root.children.append(child)
        with pytest.raises(UnencodableValueError, match="contains itself") as caught:
            encode_value(root)
        assert caught.value.where == ".children[0].parent"
        assert caught.value.type_name.endswith("Node")

    def test_very_deep_nesting_is_refused_not_a_recursion_error(self) -> None:
        """10,000 levels of lists are refused with a clear error, never RecursionError."""
        value: Any = []
        for _ in range(10_000):
            value = [value]
        with pytest.raises(UnencodableValueError, match="nested more than"):
            encode_value(value)


class TestGeneratedValues:
    @given(storable_values())
    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    def test_every_supported_type_round_trips_with_type_and_state(self, value: Any) -> None:
        """Any nesting of every supported type decodes to the same types and state."""
        data = encode_value(value)
        runs = RUNS.copy()
        decoded = decode_value(data)
        assert_same_value(decoded, value)
        constructors = {k: n for k, n in RUNS.items() if not k.endswith("__setstate__")}
        assert constructors == {k: n for k, n in runs.items() if not k.endswith("__setstate__")}
