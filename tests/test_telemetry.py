"""OpenTelemetry tracing: spans per execution, durable call and provider request.

Each test runs ``tests/otel_flows/traced.py`` in its own process, since a tracer provider
is set once per process. The program installs the SDK's in-memory exporter as the global
provider, as an application would, and writes the finished spans out as JSON; its model
calls go through the real openai SDK to the fake provider on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, TIMEOUT, only_exec_id
from llm_server import FakeLLMServer

import kitaru
from kitaru import KitaruUsageError

KILLED = -9
EXECUTION = "invoke_workflow research"
CHAT = "chat gpt-4o-mini"


def _run(
    server: FakeLLMServer, tmp_path: Path, mode: str, *extra: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the traced program in ``mode``; returns the process and the file it writes."""
    out = tmp_path / f"{mode}-{len(list(tmp_path.iterdir()))}.json"
    child = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "KITARU_OTEL", "OTELFLOW_"))
    }
    child.update(
        PYTHONPATH=str(REPO),
        OPENAI_API_KEY="sk-test-otel",
        OPENAI_BASE_URL=f"{server.url}/v1",
        **env,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tests.otel_flows.traced", mode, str(out), *extra],
        cwd=REPO,
        env=child,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return proc, out


def _spans(server: FakeLLMServer, tmp_path: Path, mode: str, *extra: str, **env: str) -> list[Any]:
    proc, out = _run(server, tmp_path, mode, *extra, **env)
    assert proc.returncode == 0, proc.stderr
    spans: list[Any] = json.loads(out.read_text())
    return spans


def _named(spans: list[Any], name: str) -> list[Any]:
    return [span for span in spans if span["name"] == name]


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], int]:
    """The spans of one traced execution (with ``KITARU_OTEL=1``), and the requests it sent.

    Shared by the tests that only read them: each run costs a new interpreter.
    """
    folder = tmp_path_factory.mktemp("one-run")
    server = FakeLLMServer().start()
    try:
        server.reply_text("Tides follow the moon.", input_tokens=11, output_tokens=5)
        spans = _spans(
            server,
            folder,
            "memory",
            KITARU_OTEL="1",
            KITARU_CONFIG_PATH=str(folder),
            KITARU_STORE=str(folder / "kitaru.db"),
        )
        return spans, server.count
    finally:
        server.stop()


@pytest.fixture
def provider(llm_server: FakeLLMServer) -> FakeLLMServer:
    llm_server.reply_text("Tides follow the moon.", input_tokens=11, output_tokens=5)
    return llm_server


class _Collector:
    """An OTLP/HTTP collector on 127.0.0.1 that keeps every body POSTed to /v1/traces."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/v1/traces":
                    collector.bodies.append(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def span_names(self) -> list[str]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        names = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    names.extend(span.name for span in scope.spans)
        return names

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector()
    try:
        yield server
    finally:
        server.stop()


class TestSpanTree:
    def test_a_run_gives_one_execution_span_with_its_calls_beneath(
        self, one_run: tuple[list[Any], int]
    ) -> None:
        """Checkpoints and the flow-body model call are children of the execution's span."""
        spans, _ = one_run
        [execution] = _named(spans, EXECUTION)
        assert execution["parent"] is None
        assert execution["kind"] == "INTERNAL"
        exec_id = execution["attributes"]["kitaru.execution.id"]
        assert execution["attributes"] == {
            "gen_ai.operation.name": "invoke_workflow",
            "kitaru.execution.id": exec_id,
            "kitaru.flow.name": "research",
            "kitaru.execution.resumed": False,
            "kitaru.execution.replay": False,
        }
        calls = [span for span in spans if span["parent"] == execution["id"]]
        assert [span["name"] for span in calls] == [
            "checkpoint gather",
            "llm summarise",
            "checkpoint publish",
            "checkpoint publish",
        ]
        assert {span["trace"] for span in spans} == {execution["trace"]}
        for span in calls:
            attributes = span["attributes"]
            assert attributes["kitaru.execution.id"] == exec_id
            assert attributes["kitaru.flow.name"] == "research"
            assert attributes["kitaru.call.replayed"] is False
            assert len(attributes["kitaru.call.id"]) == 16
            # A model call names its GenAI operation; a checkpoint is none.
            expected = "chat" if attributes["kitaru.call.kind"] == "llm" else None
            assert attributes.get("gen_ai.operation.name") == expected
            assert not any(name.startswith("kitaru._") for name in attributes)
        assert [span["attributes"]["kitaru.call.identity"] for span in calls] == [
            "gather",
            "summarise",
            "publish",
            "publish",
        ]

    def test_each_provider_request_is_a_genai_chat_span_under_its_call(
        self, one_run: tuple[list[Any], int]
    ) -> None:
        """A request is a CLIENT ``chat`` span with the GenAI model, provider and token usage."""
        spans, requests = one_run
        chats = _named(spans, CHAT)
        assert len(chats) == requests == 2
        by_id = {span["id"]: span for span in spans}
        assert [by_id[span["parent"]]["name"] for span in chats] == [
            "checkpoint gather",
            "llm summarise",
        ]
        for span in chats:
            parent = by_id[span["parent"]]
            assert span["kind"] == "CLIENT"
            assert span["status"] == "UNSET"
            assert span["attributes"] == {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 11,
                "gen_ai.usage.output_tokens": 5,
                "gen_ai.response.finish_reasons": ["stop"],
                "kitaru.request.attempt": 1,
                "kitaru.execution.id": parent["attributes"]["kitaru.execution.id"],
                "kitaru.flow.name": "research",
                "kitaru.call.id": parent["attributes"]["kitaru.call.id"],
                "kitaru.call.identity": parent["attributes"]["kitaru.call.identity"],
                "kitaru.call.kind": parent["attributes"]["kitaru.call.kind"],
            }

    def test_configure_switches_tracing_on_without_the_environment(
        self, provider: FakeLLMServer, tmp_path: Path
    ) -> None:
        """``kitaru.configure(otel=True)`` traces like ``KITARU_OTEL=1`` does."""
        spans = _spans(provider, tmp_path, "memory", OTELFLOW_CONFIGURE="1")
        assert len(_named(spans, EXECUTION)) == 1
        assert len(_named(spans, CHAT)) == 2


class TestAsyncCalls:
    def test_awaited_calls_get_the_same_spans_as_sync_ones(
        self, provider: FakeLLMServer, tmp_path: Path
    ) -> None:
        """Awaited checkpoints and ``llm_async`` calls are spans under the execution, each
        model request under its own call even when two calls run at once."""
        spans = _spans(
            provider,
            tmp_path,
            "async",
            KITARU_OTEL="1",
            KITARU_CONFIG_PATH=str(tmp_path),
            KITARU_STORE=str(tmp_path / "kitaru.db"),
        )
        [execution] = _named(spans, "invoke_workflow research_async")
        calls = [span for span in spans if span["parent"] == execution["id"]]
        names = [span["attributes"]["kitaru.call.identity"] for span in calls]
        assert sorted(names[:2]) == ["gather_async", "gather_async_2"]
        assert names[2:] == ["summarise", "publish_async", "publish_async"]
        assert [span["status"] for span in calls[3:]] == ["ERROR", "UNSET"]
        by_id = {span["id"]: span for span in spans}
        chats = _named(spans, CHAT)
        assert len(chats) == 3
        parents = sorted(
            by_id[chat["parent"]]["attributes"]["kitaru.call.identity"] for chat in chats
        )
        assert parents == ["gather_async", "gather_async_2", "summarise"]


class TestErrors:
    def test_a_failed_attempt_is_an_error_span_with_its_exception(
        self, one_run: tuple[list[Any], int]
    ) -> None:
        """The first attempt of ``publish`` fails: ERROR status, exception event, error.type."""
        spans, _ = one_run
        failed, retried = _named(spans, "checkpoint publish")
        assert failed["status"] == "ERROR"
        assert failed["events"] == ["exception"]
        assert failed["attributes"]["error.type"] == "ConnectionError"
        assert failed["attributes"]["kitaru.call.attempt"] == 1
        assert retried["status"] == "UNSET"
        assert retried["attributes"]["kitaru.call.attempt"] == 2
        assert _named(spans, EXECUTION)[0]["status"] == "UNSET"

    def test_a_failed_provider_request_is_an_error_span(
        self, provider: FakeLLMServer, tmp_path: Path
    ) -> None:
        """A provider answering 400 fails its chat span, its call and the execution."""
        provider.reply_status(400, "model does not exist")
        spans = _spans(provider, tmp_path, "memory", KITARU_OTEL="1")
        [chat] = _named(spans, CHAT)
        assert chat["status"] == "ERROR"
        assert chat["events"] == ["exception"]
        assert chat["attributes"]["error.type"] == "ProviderError"
        [gather] = _named(spans, "checkpoint gather")
        assert gather["status"] == "ERROR"
        [execution] = _named(spans, EXECUTION)
        assert execution["status"] == "ERROR"
        assert execution["events"] == ["exception"]


class TestReplayedCalls:
    def test_a_resumed_execution_marks_replayed_calls_and_sends_nothing_again(
        self, provider: FakeLLMServer, tmp_path: Path
    ) -> None:
        """After a crash, recorded calls get replayed spans, and no chat span is emitted."""
        proc, _ = _run(provider, tmp_path, "plain", OTELFLOW_KILL="1")
        assert proc.returncode == KILLED, proc.stderr
        assert provider.count == 2
        exec_id = only_exec_id()

        spans = _spans(provider, tmp_path, "resume", exec_id, KITARU_OTEL="1")
        assert provider.count == 2
        assert _named(spans, CHAT) == []
        [execution] = _named(spans, EXECUTION)
        assert execution["attributes"]["kitaru.execution.id"] == exec_id
        assert execution["attributes"]["kitaru.execution.resumed"] is True
        calls = [span for span in spans if span["parent"] == execution["id"]]
        assert [(span["name"], span["attributes"]["kitaru.call.replayed"]) for span in calls] == [
            ("checkpoint gather", True),
            ("llm summarise", True),
            ("checkpoint publish", False),
            ("checkpoint publish", False),
        ]
        replayed = [span for span in calls if span["attributes"]["kitaru.call.replayed"]]
        assert all("kitaru.call.attempt" not in span["attributes"] for span in replayed)
        assert replayed[1]["attributes"]["gen_ai.operation.name"] == "chat"
        assert all(span["parent"] not in {r["id"] for r in replayed} for span in spans)


class TestWaitsAndMemory:
    def test_a_wait_pauses_without_error_and_memory_calls_are_replayed_on_resume(
        self, provider: FakeLLMServer, tmp_path: Path
    ) -> None:
        """A paused wait ends OK marked paused; after the answer, the resumed run replays memory."""
        spans = _spans(provider, tmp_path, "approval", KITARU_OTEL="1")
        first, second = _named(spans, "invoke_workflow approval")
        assert first["attributes"]["kitaru.execution.suspended"] is True
        assert first["attributes"]["kitaru.execution.resumed"] is False
        assert second["attributes"]["kitaru.execution.resumed"] is True
        assert "kitaru.execution.suspended" not in second["attributes"]
        assert (
            first["attributes"]["kitaru.execution.id"]
            == (second["attributes"]["kitaru.execution.id"])
        )

        def calls(execution: dict[str, Any]) -> list[tuple[str, bool, bool]]:
            return [
                (
                    span["name"],
                    span["attributes"]["kitaru.call.replayed"],
                    span["attributes"].get("kitaru.call.paused", False),
                )
                for span in spans
                if span["parent"] == execution["id"]
            ]

        memory = "memory memory.set:flow:approval:topic"
        assert calls(first) == [(memory, False, False), ("wait approve", False, True)]
        assert calls(second) == [(memory, True, False), ("wait approve", False, False)]
        assert all(span["status"] == "UNSET" for span in spans)


class TestDisabled:
    def test_no_spans_without_the_switch(self, provider: FakeLLMServer, tmp_path: Path) -> None:
        """With a provider set but tracing not switched on, kitaru emits no span."""
        assert _spans(provider, tmp_path, "memory") == []

    def test_a_run_without_tracing_never_imports_opentelemetry(
        self, provider: FakeLLMServer, tmp_path: Path
    ) -> None:
        """A whole execution with model calls runs without loading opentelemetry."""
        proc, out = _run(provider, tmp_path, "plain", KITARU_OTEL="0")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(out.read_text())["imported"] is False

    def test_configure_without_opentelemetry_says_what_to_install(self) -> None:
        """Switching on where opentelemetry cannot be imported names the extra to install."""
        code = (
            "import sys\n"
            "sys.modules['opentelemetry'] = None  # as if it were not installed\n"
            "import kitaru\n"
            "try:\n"
            "    kitaru.configure(otel=True)\n"
            "except kitaru.KitaruUsageError as exc:\n"
            "    print(exc)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "pip install 'kitaru[otel]'" in proc.stdout

    def test_configure_refuses_a_switch_that_is_not_a_bool(self) -> None:
        """``otel=`` takes True, False or None; anything else is a usage error."""
        with pytest.raises(KitaruUsageError, match="otel= must be True, False or None"):
            kitaru.configure(otel="yes")  # type: ignore[arg-type]


class TestOtlpExporter:
    def test_without_a_provider_spans_go_over_otlp_to_the_configured_endpoint(
        self, provider: FakeLLMServer, tmp_path: Path, collector: _Collector
    ) -> None:
        """``KITARU_OTEL=1`` with no provider set installs an OTLP/HTTP exporter."""
        proc, out = _run(
            provider,
            tmp_path,
            "plain",
            KITARU_OTEL="1",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(out.read_text())["provider"] == "TracerProvider"
        assert collector.bodies, "no POST reached /v1/traces"
        names = collector.span_names()
        assert names.count(EXECUTION) == 1
        assert names.count(CHAT) == 2

    def test_the_applications_provider_is_used_and_nothing_is_installed(
        self, provider: FakeLLMServer, tmp_path: Path, collector: _Collector
    ) -> None:
        """With a provider set, spans go there alone, even with an OTLP endpoint configured."""
        spans = _spans(
            provider, tmp_path, "memory", KITARU_OTEL="1", OTEL_EXPORTER_OTLP_ENDPOINT=collector.url
        )
        assert len(_named(spans, EXECUTION)) == 1
        assert collector.bodies == []
