"""A flow-body output handle used as text is its value, so composed prompts are right.

Kitaru's LLM guide builds the next prompt from an earlier answer with an f-string; the
prompt the provider receives (and the journal records) must hold that answer, not a
description of the handle. Reading a handle as text is a flow-body load, so a replay
that changed the answer runs the calls built from it live.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import TIMEOUT
from llm_server import FakeLLMServer

import kitaru
from kitaru import checkpoint, flow
from kitaru.client import KitaruClient

MOCK = "one two three"
MODEL = "openai/gpt-4o-mini"


@flow
def writer(topic: str) -> str:
    outline = kitaru.llm(
        f"Create a 3-bullet outline about {topic}.",
        model="fast",
        name="outline_call",
    )
    return kitaru.llm(  # type: ignore[no-any-return]
        f"Write a short paragraph using this outline:\n{outline}",
        model="fast",
        name="draft_call",
    )


@flow
def composer(topic: str) -> list[str]:
    outline = kitaru.llm(f"Outline {topic}.", model=MODEL, name="outline_call")
    kitaru.llm("Before: " + outline, model=MODEL, name="prefixed")
    kitaru.llm(outline + " :after", model=MODEL, name="suffixed")
    kitaru.llm(str(outline), model=MODEL, name="converted")
    kitaru.llm(format(outline, ">12"), model=MODEL, name="formatted")
    return [outline]  # type: ignore[list-item]


@checkpoint
def publish(draft: str) -> str:
    return f"PUBLISHED: {draft}"


@flow
def pipeline(topic: str) -> str:
    outline = kitaru.llm(f"Outline {topic}.", model=MODEL, name="outline_call")
    draft = kitaru.llm(f"Draft from: {outline}", model=MODEL, name="draft_call")
    return publish(draft)  # type: ignore[return-value]


def _prompts(exec_id: str) -> dict[str, list[dict[str, Any]]]:
    calls = KitaruClient().executions.get(exec_id).llm_calls
    return {call.name: call.prompt() for call in calls}


def _user_text(body: Any) -> str:
    return str(body["messages"][-1]["content"])


class TestHandleAsText:
    def test_the_documented_writer_sends_the_outline_it_got(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The LLM guide's f-string prompt carries the first call's answer to the second."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", MOCK)
        monkeypatch.setenv(
            "KITARU_MODEL_REGISTRY",
            json.dumps({"aliases": {"fast": {"model": "openai/gpt-4o-mini"}}}),
        )

        handle = writer.run("durable agents")

        assert handle.wait(timeout=TIMEOUT) == MOCK
        prompts = _prompts(handle.exec_id)
        assert prompts["draft_call"] == [
            {"role": "user", "content": f"Write a short paragraph using this outline:\n{MOCK}"}
        ]

    def test_concatenation_str_and_format_send_the_value(
        self, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``+`` on either side, ``str()`` and ``format()`` all give the provider the text."""
        llm_server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        llm_server.reply_text("the outline")

        handle = composer.run("journals")

        assert handle.wait(timeout=TIMEOUT) == ["the outline"]
        sent = [_user_text(request.body) for request in llm_server.requests]
        assert sent == [
            "Outline journals.",
            "Before: the outline",
            "the outline :after",
            "the outline",
            " the outline",
        ]

    def test_repr_still_describes_the_handle(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``repr()`` names the call, for debugging; it is not the value."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", MOCK)
        seen: list[str] = []

        @flow
        def describe() -> None:
            seen.append(repr(kitaru.llm("hi", model=MODEL, name="greeting")))

        describe.run().wait(timeout=TIMEOUT)
        assert len(seen) == 1
        assert seen[0].startswith("<kitaru output of llm 'greeting'")


class TestReplayLineage:
    def test_a_prompt_built_from_an_overridden_answer_runs_live(
        self, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Formatting an overridden answer into a prompt makes the call built from it run."""
        llm_server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        llm_server.reply_text("first outline")
        source = pipeline.run("journals")
        assert source.wait(timeout=TIMEOUT) == "PUBLISHED: first outline"
        assert llm_server.count == 2

        replay = pipeline.replay(
            source.exec_id,
            from_="publish",
            overrides={"checkpoint.outline_call": "edited outline"},
        )
        replay.wait(timeout=TIMEOUT)

        # The draft's prompt held the overridden outline, so it was sent again.
        assert llm_server.count == 3
        assert _user_text(llm_server.last_request.body) == "Draft from: edited outline"
        assert _prompts(replay.exec_id)["draft_call"] == [
            {"role": "user", "content": "Draft from: edited outline"}
        ]
