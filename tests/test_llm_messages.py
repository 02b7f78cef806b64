"""Prompt normalisation: kitaru/_llm/messages.py."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitaru._llm.messages import normalise_prompt
from kitaru.errors import KitaruUsageError


class TestStringPrompts:
    def test_string_becomes_one_user_message(self) -> None:
        """A plain string is sent as a single user message."""
        assert normalise_prompt("Hello") == [{"role": "user", "content": "Hello"}]

    def test_system_is_prepended(self) -> None:
        """system= becomes a system message in front of the prompt."""
        assert normalise_prompt("Hello", system="Be brief.") == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ]

    @given(st.text(min_size=1).filter(lambda text: text.strip() != ""))
    def test_any_non_blank_text_is_kept_verbatim(self, text: str) -> None:
        """Whatever non-blank text is given reaches the provider unchanged."""
        assert normalise_prompt(text) == [{"role": "user", "content": text}]


class TestMessageLists:
    def test_message_list_is_copied_with_role_and_content_only(self) -> None:
        """Messages keep role and content; other keys are dropped and the input is not aliased."""
        original = [
            {"role": "user", "content": "Hi", "name": "bob"},
            {"role": "assistant", "content": "Hello"},
        ]
        result = normalise_prompt(original)
        assert result == [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ]
        result[0]["content"] = "changed"
        assert original[0]["content"] == "Hi"

    def test_system_is_prepended_to_a_list(self) -> None:
        """system= is put in front of a message list too."""
        result = normalise_prompt([{"role": "user", "content": "Hi"}], system="S")
        assert result[0] == {"role": "system", "content": "S"}
        assert len(result) == 2

    def test_tuples_and_other_mappings_are_accepted(self) -> None:
        """A tuple of read-only mappings works like a list of dicts."""
        prompt = (MappingProxyType({"role": "user", "content": "Hi"}),)
        assert normalise_prompt(prompt) == [{"role": "user", "content": "Hi"}]


class TestBadPrompts:
    @pytest.mark.parametrize("prompt", ["", "   \n\t"])
    def test_empty_string_is_refused(self, prompt: str) -> None:
        """An empty or blank prompt string is a usage error."""
        with pytest.raises(KitaruUsageError, match="The prompt is empty"):
            normalise_prompt(prompt)

    def test_empty_list_is_refused(self) -> None:
        """An empty message list is a usage error."""
        with pytest.raises(KitaruUsageError, match="empty message list"):
            normalise_prompt([])

    @pytest.mark.parametrize("prompt", [None, 42, b"bytes", {"role": "user", "content": "x"}])
    def test_wrong_types_are_refused(self, prompt: object) -> None:
        """Only strings and lists of messages are prompts."""
        with pytest.raises(KitaruUsageError, match="must be a string or a list of messages"):
            normalise_prompt(prompt)

    def test_message_that_is_not_a_mapping_is_refused(self) -> None:
        """Each list item must be a mapping, and the error says which one is not."""
        with pytest.raises(KitaruUsageError, match=r"Message 1 of the prompt is a str"):
            normalise_prompt([{"role": "user", "content": "x"}, "oops"])

    def test_message_without_role_is_refused(self) -> None:
        """A message with no role is refused, naming the missing key."""
        with pytest.raises(KitaruUsageError, match=r"Message 0 .* no 'role' key"):
            normalise_prompt([{"content": "x"}])

    def test_message_without_content_is_refused(self) -> None:
        """A message with no content is refused, naming the missing key."""
        with pytest.raises(KitaruUsageError, match=r"no 'content' key"):
            normalise_prompt([{"role": "user"}])

    def test_message_without_either_names_both(self) -> None:
        """A message missing both keys names both."""
        with pytest.raises(KitaruUsageError, match=r"no 'role' or 'content' key"):
            normalise_prompt([{}])

    @pytest.mark.parametrize("role", [None, 3, "", "  "])
    def test_non_text_or_blank_role_is_refused(self, role: object) -> None:
        """The role must be non-empty text."""
        with pytest.raises(KitaruUsageError, match="the role must be non-empty text"):
            normalise_prompt([{"role": role, "content": "x"}])

    @pytest.mark.parametrize("content", [None, 3, ["part"], {"text": "x"}])
    def test_non_text_content_is_refused(self, content: object) -> None:
        """Content must be a string: kitaru.llm() is text in, text out."""
        with pytest.raises(KitaruUsageError, match="pass the content as a string"):
            normalise_prompt([{"role": "user", "content": content}])

    def test_blank_content_is_refused(self) -> None:
        """A message with blank content is refused."""
        with pytest.raises(KitaruUsageError, match="empty content"):
            normalise_prompt([{"role": "user", "content": " "}])

    @pytest.mark.parametrize("system", ["", "  "])
    def test_empty_system_is_refused(self, system: str) -> None:
        """An empty system= is a usage error, not silently dropped."""
        with pytest.raises(KitaruUsageError, match="system= is empty"):
            normalise_prompt("Hi", system=system)

    def test_non_string_system_is_refused(self) -> None:
        """system= must be text."""
        with pytest.raises(KitaruUsageError, match="system= must be a string"):
            normalise_prompt("Hi", system=["x"])
