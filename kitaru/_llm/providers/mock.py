"""A provider that answers every request with a fixed text, for tests and demos.

It is what ``KITARU_LLM_MOCK_RESPONSE`` switches on: no credentials, no network, and
token usage estimated by counting whitespace-separated words.

Offered tools, it never asks for a tool call (an agent loop ends after its first turn,
with finish reason ``stop``). Given ``response_format=``, its text is the answer that is
parsed, so set the variable to JSON that fits the class (e.g. ``{"title": "Draft"}``);
text that does not fit fails the call as a real provider's would.
"""

from __future__ import annotations

from kitaru._llm.providers.protocol import ProviderRequest, ProviderResponse

__all__ = ["MockProvider"]


class MockProvider:
    """Answers every request with ``text``."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return f"MockProvider(text={self._text!r})"

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        """Return the fixed text, with usage estimated from word counts."""
        input_tokens = sum(len(message["content"].split()) for message in request.messages)
        output_tokens = len(self._text.split())
        return ProviderResponse(
            text=self._text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
