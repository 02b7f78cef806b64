"""Secret values never show up anywhere but the secrets file.

One scenario drives the CLI, successful calls and every kind of provider failure with a
known key, collecting every output, error message, repr, log record and file it can
find; the key may then appear only inside secrets.json.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from llm_server import FakeLLMServer

import kitaru
from kitaru import _redaction as redaction
from kitaru import checkpoint, flow
from kitaru._llm import perform_llm_call, prepare_llm_call
from kitaru._llm.registry import register_model
from kitaru._redaction import Redactor, redact
from kitaru._secrets import set_secret
from kitaru.cli import main
from kitaru.errors import KitaruError

SECRET_VALUE = "sk-leak-canary-0123456789abcdef"
ENV_VALUE = "sk-env-canary-fedcba9876543210"


class Collected:
    """Everything the scenario produced that a user or a log could see."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def failure(self, where: str, action: Callable[[], object]) -> None:
        """Run ``action``, which must raise a kitaru error, and keep its message and repr."""
        with pytest.raises(KitaruError) as info:
            action()
        self.add(f"{where}: str", str(info.value))
        self.add(f"{where}: repr", repr(info.value))
        self.add(f"{where}: args", repr(info.value.args))
        self.add(f"{where}: attrs", repr(vars(info.value)))


def cli(collected: Collected, *args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    collected.add(f"kitaru {' '.join(args)} (exit {result.exit_code})", result.output)


class TestNoSecretLeaks:
    def test_known_secret_appears_only_in_the_secrets_file(
        self,
        llm_server: FakeLLMServer,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        tmp_path: Path,
    ) -> None:
        """CLI output, results, errors, reprs, logs and files never contain the key."""
        caplog.set_level(logging.DEBUG)
        llm_server.point_providers_here(monkeypatch)
        collected = Collected()

        # Store the key and link it, through the CLI, with every output format.
        for output in ("text", "json"):
            cli(
                collected,
                "secrets",
                "set",
                "creds",
                f"--OPENAI_API_KEY={SECRET_VALUE}",
                "-o",
                output,
            )
            cli(
                collected,
                "secrets",
                "set",
                "creds",
                f"--ANTHROPIC_API_KEY={SECRET_VALUE}",
                "-o",
                output,
            )
            cli(
                collected,
                "secrets",
                "set",
                "creds",
                f"--OPENROUTER_API_KEY={SECRET_VALUE}",
                "-o",
                output,
            )
            cli(collected, "secrets", "list", "-o", output)
            cli(collected, "secrets", "show", "creds", "-o", output)
        cli(collected, "secrets", "set", "creds", f"OPENAI_API_KEY={SECRET_VALUE}")
        cli(collected, "secrets", "set", "creds", "--OPENAI_API_KEY", SECRET_VALUE)
        cli(collected, "secrets", "set", "creds", SECRET_VALUE)
        for alias, model in (
            ("oa", "openai/gpt-4o"),
            ("an", "anthropic/claude-sonnet-4"),
            ("or", "openrouter/x/y"),
        ):
            cli(collected, "model", "register", alias, "--model", model, "--secret", "creds")
        cli(collected, "model", "list")
        cli(collected, "model", "list", "-o", "json")

        # Successful calls through the linked secret, with what the core would journal.
        for alias in ("oa", "an", "or"):
            llm_server.reply_text("fine")
            result = perform_llm_call("Hello", model=alias)
            assert result.credential_source == "secret"
            collected.add(f"{alias} result repr", repr(result))
            collected.add(f"{alias} result json", msgspec.json.encode(result).decode())
            collected.add(f"{alias} prepared repr", repr(prepare_llm_call("Hello", model=alias)))

        # Every failure a provider can produce, with the key echoed back where possible.
        failures = [
            lambda: llm_server.reply_status(401, f"Incorrect API key provided: {SECRET_VALUE}"),
            lambda: llm_server.reply_status(403, f"key {SECRET_VALUE} lacks access"),
            lambda: llm_server.reply_status(400, f"bad request for key {SECRET_VALUE}"),
            lambda: llm_server.reply_status(429, f"slow down {SECRET_VALUE}"),
            lambda: llm_server.reply_status(500, f"boom {SECRET_VALUE}"),
            lambda: llm_server.reply_garbage(f"not json {SECRET_VALUE}".encode()),
            lambda: llm_server.reply_no_text,
        ]
        for index, setup in enumerate(failures):
            setup()
            for alias in ("oa", "an", "or"):
                collected.failure(
                    f"failure {index} via {alias}",
                    lambda alias=alias: perform_llm_call("Hi", model=alias),
                )

        # Setup errors: a secret without the needed key, and an unreachable provider.
        cli(collected, "secrets", "set", "partial", f"--SOMETHING_ELSE={SECRET_VALUE}")
        cli(
            collected,
            "model",
            "register",
            "partial",
            "--model",
            "openai/gpt-4o",
            "--secret",
            "partial",
        )
        collected.failure(
            "key missing from secret", lambda: perform_llm_call("Hi", model="partial")
        )
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:{SECRET_VALUE}@127.0.0.1:9/v1")
        collected.failure("connection", lambda: perform_llm_call("Hi", model="oa"))

        # A key from the environment must be just as invisible.
        llm_server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", ENV_VALUE)
        llm_server.reply_status(401, f"Incorrect API key provided: {ENV_VALUE}")
        collected.failure("env key 401", lambda: perform_llm_call("Hi", model="openai/gpt-4o"))

        for record in caplog.records:
            collected.add(f"log {record.name}", record.getMessage() + repr(record.__dict__))
        secrets_file = tmp_path / "kitaru-config" / "secrets.json"
        for path in sorted(tmp_path.rglob("*")):
            if path.is_file() and path != secrets_file:
                collected.add(f"file {path}", path.read_bytes().decode("utf-8", "replace"))

        leaks = [
            where for where, text in collected.texts if SECRET_VALUE in text or ENV_VALUE in text
        ]
        assert leaks == []
        # The scenario really did use the key, and the secrets file really holds it.
        assert SECRET_VALUE in secrets_file.read_text()
        assert any(SECRET_VALUE in r.headers.get("authorization", "") for r in llm_server.requests)
        assert len(collected.texts) > 100


NEAR_KEY = "sk-near-canary-4f7a9c2e1b8d6053"


def runs_of(secret: str, length: int = 8) -> set[str]:
    """Every run of ``length`` characters of ``secret``, lower-cased."""
    folded = secret.lower()
    return {folded[i : i + length] for i in range(len(folded) - length + 1)}


@checkpoint
def ask_and_report(prompt: str) -> str:
    try:
        return str(kitaru.llm(prompt, model="near"))
    except KitaruError as exc:
        print(f"provider said: {exc}")
        logging.getLogger("agent").warning("call failed: %s", exc)
        raise


@flow
def near_echo_flow() -> str:
    return ask_and_report("Hello")  # type: ignore[return-value]


class TestNearEchoesOfTheKey:
    @pytest.mark.parametrize(
        "echo",
        [
            pytest.param(NEAR_KEY[:-1], id="last-character-cut"),
            pytest.param(NEAR_KEY[1:], id="first-character-cut"),
            pytest.param(NEAR_KEY.upper(), id="upper-cased"),
            pytest.param(f"{NEAR_KEY[:10]}...{NEAR_KEY[-9:]}", id="middle-elided"),
        ],
    )
    def test_no_run_of_the_key_reaches_journal_get_or_logs(
        self, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, echo: str
    ) -> None:
        """A provider echoing part of the key, in any case, leaves no 8-character run of it."""
        llm_server.point_providers_here(monkeypatch)
        set_secret("near-creds", {"OPENAI_API_KEY": NEAR_KEY})
        register_model("near", "openai/gpt-4o", "near-creds")
        llm_server.reply_status(403, f"key {echo} lacks access to this model")

        handle = near_echo_flow.run()
        with pytest.raises(KitaruError) as caught:
            handle.wait(timeout=60)

        exec_id = handle.exec_id
        texts = {"error": f"{caught.value} {caught.value!r}"}
        with contextlib.closing(sqlite3.connect(os.environ["KITARU_STORE"])) as conn:
            rows = conn.execute("SELECT body FROM events").fetchall()
            rows += conn.execute("SELECT bytes FROM payloads").fetchall()
        texts["journal"] = "\n".join(bytes(row[0]).decode("utf-8", "replace") for row in rows)
        for args in (
            ("executions", "get", exec_id),
            ("executions", "get", exec_id, "-o", "json"),
            ("executions", "logs", exec_id),
            ("executions", "logs", exec_id, "-o", "json"),
        ):
            result = CliRunner().invoke(main, list(args))
            assert result.exit_code == 0, result.output
            texts[" ".join(args)] = result.output

        # The scenario did produce the messages the key could hide in.
        assert "lacks access" in texts["journal"]
        assert "provider said" in texts["executions logs " + exec_id]
        assert "call failed" in texts["executions logs " + exec_id]
        assert llm_server.count == 1
        leaked = {
            where: sorted(run for run in runs_of(NEAR_KEY) if run in text.lower())
            for where, text in texts.items()
        }
        assert leaked == {where: [] for where in texts}


class TestRedactor:
    KEY = "sk-proj-AbCdEf0123456789"

    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            (f"key {KEY} bad", "key [redacted] bad"),
            (f"key {KEY[:-1]}!", "key [redacted]!"),
            (f"KEY {KEY.upper()}", "KEY [redacted]"),
            (f"{KEY[:8]} and {KEY[-8:]}", "[redacted] and [redacted]"),
            (f"only {KEY[:7]} here", f"only {KEY[:7]} here"),
            ("nothing secret at all", "nothing secret at all"),
        ],
    )
    def test_runs_of_eight_or_more_are_blanked(self, text: str, shown: str) -> None:
        """Any run of 8+ characters of the key, in any case, becomes [redacted]; less stays."""
        assert Redactor([self.KEY])(text) == shown

    def test_non_ascii_text_keeps_its_positions(self) -> None:
        """Characters whose lower case is longer do not shift what is blanked."""
        text = f"İstanbul İ {self.KEY.upper()} ß"
        assert Redactor([self.KEY])(text) == "İstanbul İ [redacted] ß"

    def test_short_secret_values_are_not_searched_for(self) -> None:
        """A value under 8 characters would blank ordinary words, so it is left alone."""
        assert Redactor(["short"])("a short text") == "a short text"

    def test_the_matcher_is_built_once_per_set_of_secrets(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Redacting again with the same secrets reuses the matcher, and a large text is fast."""
        monkeypatch.setenv("OPENAI_API_KEY", self.KEY)
        redact("warm up")
        built = dict(redaction._built)
        text = "an ordinary log line with no key in it\n" * 25_000  # about 1 MB
        started = time.perf_counter()
        assert redact(text) == text
        assert time.perf_counter() - started < 5.0
        assert redaction._built == built
