"""A wait's answer form is built from its recorded JSON schema and read back into a value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec
import pydantic
import pytest

pytest.importorskip("starlette")

from kitaru.runtime.wait_schemas import describe_schema
from kitaru.ui._forms import FormError, fields_of, value_from_form


@dataclass
class Decision:
    approved: bool
    reviewer: str
    priority: int = 1


class Budget(msgspec.Struct):
    amount: float
    currency: Literal["EUR", "USD"]
    tags: list[str] = []


class Review(pydantic.BaseModel):
    score: int
    comment: str | None = None


def _schema(kind: type) -> dict[str, object]:
    _, schema = describe_schema(kind)
    assert schema is not None
    return schema


class TestFields:
    """Each property of the schema becomes a field of the matching kind."""

    def test_dataclass(self) -> None:
        """A dataclass gives a checkbox, a required text field and an optional number."""
        fields = {f.name: f for f in fields_of(_schema(Decision))}
        assert (fields["approved"].kind, fields["approved"].required) == ("bool", True)
        assert (fields["reviewer"].kind, fields["reviewer"].required) == ("str", True)
        assert (fields["priority"].kind, fields["priority"].default) == ("int", 1)
        assert fields["priority"].required is False

    def test_struct_with_choices_and_a_list(self) -> None:
        """A Literal becomes a choice; a list becomes a JSON field."""
        fields = {f.name: f for f in fields_of(_schema(Budget))}
        assert fields["amount"].kind == "float"
        assert (fields["currency"].kind, fields["currency"].choices) == ("choice", ("EUR", "USD"))
        assert fields["tags"].kind == "json"

    def test_pydantic_optional(self) -> None:
        """An Optional field of a pydantic model asks for its type and is not required."""
        fields = {f.name: f for f in fields_of(_schema(Review))}
        assert (fields["score"].kind, fields["score"].required) == ("int", True)
        assert (fields["comment"].kind, fields["comment"].required) == ("str", False)

    def test_plain_types_and_a_gate(self) -> None:
        """bool, int and str are one field named value; a wait with no schema has none."""
        assert [(f.name, f.kind) for f in fields_of(_schema(bool))] == [("value", "bool")]
        assert [(f.name, f.kind) for f in fields_of(_schema(int))] == [("value", "int")]
        assert fields_of(None) == []


class TestValues:
    """What the form sends is turned into the JSON value, or each wrong field is named."""

    def test_dataclass_answer(self) -> None:
        """An unchecked box is false; numbers are numbers; a blank optional is left out."""
        form = {"reviewer": "ana", "priority": "3"}
        assert value_from_form(_schema(Decision), form) == {
            "approved": False,
            "reviewer": "ana",
            "priority": 3,
        }
        form = {"approved": "on", "reviewer": "bo", "priority": ""}
        assert value_from_form(_schema(Decision), form) == {"approved": True, "reviewer": "bo"}

    def test_wrong_fields_are_named(self) -> None:
        """A missing required field and a non-number are reported per field."""
        with pytest.raises(FormError) as caught:
            value_from_form(_schema(Decision), {"reviewer": " ", "priority": "high"})
        assert caught.value.errors == {
            "reviewer": "is required",
            "priority": "must be a whole number, got 'high'",
        }

    def test_choices_and_json(self) -> None:
        """A choice outside the list and JSON that does not parse are refused."""
        with pytest.raises(FormError) as caught:
            value_from_form(_schema(Budget), {"amount": "2", "currency": "GBP", "tags": "[x"})
        assert set(caught.value.errors) == {"currency", "tags"}
        value = value_from_form(
            _schema(Budget), {"amount": "2.5", "currency": "EUR", "tags": '["a"]'}
        )
        assert value == {"amount": 2.5, "currency": "EUR", "tags": ["a"]}

    def test_plain_value_and_gate(self) -> None:
        """A plain type's answer is the value itself; a gate's is None."""
        assert value_from_form(_schema(int), {"value": "7"}) == 7
        assert value_from_form(_schema(bool), {"value": "on"}) is True
        assert value_from_form(None, {}) is None
