"""A fake model provider on 127.0.0.1 that the real provider SDKs can talk to.

It speaks two wire formats:

- OpenAI chat completions: ``POST /v1/chat/completions`` (openai, ollama, openrouter);
- Anthropic messages: ``POST /v1/messages``.

Every request is recorded (path, lower-cased headers, JSON body). What the server answers
is a standing reply, changed with ``reply_text``, ``reply_status``, ``reply_garbage``,
``reply_no_text`` or ``reply_tool_calls``; it applies to every request until changed.
``reply_text`` and ``reply_tool_calls`` take ``once=True`` to answer only the next
request that way (such replies queue up in order), e.g. a tool call and then the final
text of an agent loop. ``delay_replies`` makes it hold each answer back, as a provider
busy generating does.

Use the ``llm_server`` fixture (loaded for every test module by ``tests/conftest.py``)::

    def test_something(llm_server, monkeypatch):
        llm_server.point_providers_here(monkeypatch)
        llm_server.reply_text("hello", input_tokens=3, output_tokens=1)
        ...
        assert llm_server.last_request.body["model"] == "gpt-4o"

The fixture always shuts the server down, also when the test fails.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["FakeLLMServer", "RecordedRequest", "llm_server"]

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

# Error types each wire format uses for a status code, so the SDKs parse the bodies
# exactly as they would a real provider's.
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Reply:
    kind: str  # "text", "status", "garbage" or "no_text"
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    status: int = 200
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    tool_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """(id, name, arguments) of each tool call, for kind "tool_calls"."""


class FakeLLMServer:
    """A threaded HTTP server bound to ``port`` (default: an ephemeral one) on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._reply = _Reply(kind="text", text="ok", input_tokens=1, output_tokens=1)
        self._delay = 0.0
        self._queued: list[_Reply] = []
        self._call_ids = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._httpd.daemon_threads = True
        # A short poll interval keeps shutdown (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-llm-server",
            daemon=True,
        )

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def point_providers_here(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Aim every provider kitaru supports at this server, through their own env vars."""
        monkeypatch.setenv("OPENAI_BASE_URL", f"{self.url}/v1")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", self.url)
        monkeypatch.setenv("OLLAMA_HOST", self.url)
        monkeypatch.setenv("KITARU_OPENROUTER_BASE_URL", f"{self.url}/v1")

    # -- what to answer ----------------------------------------------------------------

    def reply_text(
        self, text: str, *, input_tokens: int = 10, output_tokens: int = 5, once: bool = False
    ) -> None:
        """Answer every request (with ``once``, the next one) with ``text`` and this usage."""
        reply = _Reply(
            kind="text", text=text, input_tokens=input_tokens, output_tokens=output_tokens
        )
        if once:
            self._queue(reply)
        else:
            self._set(reply)

    def reply_tool_calls(
        self,
        calls: list[tuple[str, dict[str, Any]]],
        *,
        text: str = "",
        once: bool = False,
        input_tokens: int = 12,
        output_tokens: int = 7,
    ) -> list[str]:
        """Answer by asking for tool calls, each ``(name, arguments)``, with ``text`` beside.

        Returns the ids given to the calls (``call_1``, ... counted over the server's life).
        """
        with self._lock:
            first = self._call_ids + 1
            self._call_ids += len(calls)
        ids = [f"call_{number}" for number in range(first, first + len(calls))]
        reply = _Reply(
            kind="tool_calls",
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tool_calls=[
                (id_, name, arguments) for id_, (name, arguments) in zip(ids, calls, strict=True)
            ],
        )
        if once:
            self._queue(reply)
        else:
            self._set(reply)
        return ids

    def reply_status(
        self,
        status: int,
        message: str = "simulated failure",
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer every request with an error ``status`` in the provider's error format.

        Retryable statuses carry ``retry-after-ms: 1`` so SDK retries stay fast; pass
        ``headers`` to override.
        """
        extra = {"retry-after-ms": "1"}
        extra.update(headers or {})
        self._set(_Reply(kind="status", status=status, message=message, headers=extra))

    def reply_garbage(self, body: bytes = b"\x00\xffthis is not json{{{") -> None:
        """Answer every request with 200 and ``body`` as is (by default bytes that are not JSON)."""
        self._set(_Reply(kind="garbage", raw=body))

    def reply_no_text(self) -> None:
        """Answer every request with a well-formed reply that carries no text."""
        self._set(_Reply(kind="no_text", input_tokens=4, output_tokens=0))

    def delay_replies(self, seconds: float) -> None:
        """Wait ``seconds`` after receiving each request before answering it (0: at once)."""
        with self._lock:
            self._delay = seconds

    def _set(self, reply: _Reply) -> None:
        with self._lock:
            self._reply = reply

    def _queue(self, reply: _Reply) -> None:
        with self._lock:
            self._queued.append(reply)

    # -- what was asked ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many requests the server has received."""
        with self._lock:
            return len(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request; fails the test if there was none."""
        with self._lock:
            assert self._requests, "the fake LLM server received no request"
            return self._requests[-1]

    def _record(self, request: RecordedRequest) -> _Reply:
        with self._lock:
            self._requests.append(request)
            reply = self._queued.pop(0) if self._queued else self._reply
            delay = self._delay
        if delay:
            time.sleep(delay)
        return reply


def _make_handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without this, Nagle's algorithm
        # holds the body back for a delayed ACK (about 40 ms a request).
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            reply = server._record(
                RecordedRequest(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
            )
            if self.path == OPENAI_PATH:
                self._answer(*_openai_answer(reply, body))
            elif self.path == ANTHROPIC_PATH:
                self._answer(*_anthropic_answer(reply, body))
            else:
                self._answer(404, {"error": {"message": f"no route {self.path}"}}, {})

        def _answer(self, status: int, payload: Any, headers: dict[str, str]) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return Handler


def _model_of(body: Any) -> str:
    return str(body.get("model", "unknown")) if isinstance(body, dict) else "unknown"


def _openai_answer(reply: _Reply, body: Any) -> tuple[int, Any, dict[str, str]]:
    if reply.kind == "status":
        error = {
            "message": reply.message,
            "type": _OPENAI_ERROR_TYPES.get(reply.status, "server_error"),
            "code": None,
            "param": None,
        }
        return reply.status, {"error": error}, reply.headers
    if reply.kind == "garbage":
        return 200, reply.raw, {}
    content = reply.text if reply.kind in ("text", "tool_calls") and reply.text else None
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if reply.kind == "text" and not content:
        message["content"] = ""
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for call_id, name, arguments in reply.tool_calls
        ]
    return (
        200,
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": _model_of(body),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": reply.input_tokens,
                "completion_tokens": reply.output_tokens,
                "total_tokens": reply.input_tokens + reply.output_tokens,
            },
        },
        {},
    )


def _anthropic_answer(reply: _Reply, body: Any) -> tuple[int, Any, dict[str, str]]:
    if reply.kind == "status":
        error_type = _ANTHROPIC_ERROR_TYPES.get(reply.status, "api_error")
        payload = {"type": "error", "error": {"type": error_type, "message": reply.message}}
        return reply.status, payload, reply.headers
    if reply.kind == "garbage":
        return 200, reply.raw, {}
    content: list[dict[str, Any]] = (
        [{"type": "text", "text": reply.text}]
        if reply.kind == "text" or (reply.kind == "tool_calls" and reply.text)
        else []
    )
    content.extend(
        {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
        for call_id, name, arguments in reply.tool_calls
    )
    return (
        200,
        {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": _model_of(body),
            "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        },
        {},
    )


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    """A started fake provider server, always stopped after the test."""
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()
