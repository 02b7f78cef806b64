"""Secret values never show up anywhere but the secrets file.

One scenario drives the CLI, successful calls and every kind of provider failure with a
known key, collecting every output, error message, repr, log record and file it can
find; the key may then appear only inside secrets.json.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from llm_server import FakeLLMServer

from kitaru._llm import perform_llm_call, prepare_llm_call
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
