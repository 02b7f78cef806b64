"""``-o json`` prints exactly what ``json.dumps(indent=2, sort_keys=True)`` would.

The CLI lays out its JSON through a faster path; programs that read it (and people
who diff it) must not see a single byte differ, whatever the values hold.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kitaru.cli.output import _indented

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    # Lone surrogates included: text recorded before they were escaped may hold them.
    | st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)


def _standard(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


class TestSameTextAsTheStandardLibrary:
    @given(VALUES)
    def test_any_json_value_is_laid_out_byte_for_byte_the_same(self, data: Any) -> None:
        """Generated values (NaN, infinities, lone surrogates, empty and nested
        containers, big integers) print exactly as the standard library prints them."""
        assert _indented(data) == _standard(data)

    def test_values_json_cannot_hold_are_printed_as_text(self) -> None:
        """A value without a JSON form (a date, a set) prints as its ``str``, as before."""
        import datetime as dt

        data = {"at": dt.datetime(2026, 11, 30, 12, 0), "tags": frozenset()}
        assert _indented(data) == _standard(data)

    def test_values_msgspec_refuses_take_the_standard_path(self) -> None:
        """NaN and an escaped lone surrogate are printed the standard library's way."""
        for data in ({"x": float("nan")}, ["\ud83d"], {"inf": float("-inf")}):
            assert _indented(data) == _standard(data)
