"""``kitaru model``: register, list, remove and default, through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import REPO, TIMEOUT, assert_clean_error, child_env, kitaru_command

from kitaru._llm.registry import list_models, load_local_registry, register_model
from kitaru._secrets import set_secret
from kitaru.cli import main
from kitaru.errors import KitaruUsageError


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run_ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def assert_clean_failure(result: Result, fragment: str) -> None:
    """Exit code 1, one 'Error:' message on stderr containing ``fragment``, no traceback."""
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


class TestRegister:
    def test_register_with_secret(self) -> None:
        """register stores the alias with its secret and reports it as the default."""
        set_secret("openai-creds", {"OPENAI_API_KEY": "sk-x"})
        result = run_ok(
            "model", "register", "fast", "--model", "openai/gpt-5-nano", "--secret", "openai-creds"
        )
        assert result.stdout == (
            "Registered alias 'fast' for openai/gpt-5-nano with secret 'openai-creds'. "
            "It is the default.\n"
        )
        registry = load_local_registry()
        assert registry.default == "fast"
        assert registry.aliases["fast"].secret == "openai-creds"

    def test_register_json(self) -> None:
        """register -o json prints the stored entry as JSON."""
        run_ok("model", "register", "fast", "--model", "openai/gpt-5-nano")
        result = run_ok("model", "register", "local", "--model", "ollama/llama3.2", "-o", "json")
        assert json.loads(result.stdout) == {
            "alias": "local",
            "model": "ollama/llama3.2",
            "secret": None,
            "default": False,
        }

    @pytest.mark.parametrize(
        ("args", "fragment"),
        [
            (["BAD", "--model", "openai/gpt-4o"], "Invalid alias 'BAD'"),
            (["fast", "--model", "gpt-4o"], "no provider prefix"),
            (["fast", "--model", "azure/gpt-4o"], "Supported providers: anthropic, ollama"),
            (["fast", "--model", "openai/"], "no model name"),
            (["fast", "--model", "openai/x", "--secret", "nope"], "Secret 'nope' does not exist"),
        ],
    )
    def test_bad_input_fails_cleanly(self, args: list[str], fragment: str) -> None:
        """Bad aliases, models and secrets exit 1 with an error line and no traceback."""
        assert_clean_failure(run("model", "register", *args), fragment)
        assert load_local_registry().aliases == {}

    def test_missing_model_option_is_a_usage_error(self) -> None:
        """Leaving out --model is a usage error: exit 1, like every other CLI error."""
        result = run("model", "register", "fast")
        assert result.exit_code == 1
        assert "--model" in result.stderr


class TestList:
    def test_empty_list_says_how_to_register(self) -> None:
        """With no aliases, list says how to add one."""
        assert "kitaru model register ALIAS" in run_ok("model", "list").stdout

    def test_text_table_marks_default_and_secret(self) -> None:
        """The text table shows alias, model, secret, a default marker and the source."""
        set_secret("creds", {"OPENAI_API_KEY": "sk-x"})
        run_ok("model", "register", "fast", "--model", "openai/gpt-5-nano", "--secret", "creds")
        run_ok("model", "register", "local", "--model", "ollama/llama3.2")
        lines = run_ok("model", "list").stdout.splitlines()
        assert lines[0].split() == ["ALIAS", "MODEL", "SECRET", "DEFAULT", "SOURCE"]
        assert lines[1].split() == ["fast", "openai/gpt-5-nano", "creds", "*", "local"]
        assert lines[2].split() == ["local", "ollama/llama3.2", "-", "local"]

    def test_json_includes_environment_registry(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """list -o json shows the effective registry, KITARU_MODEL_REGISTRY included."""
        run_ok("model", "register", "fast", "--model", "openai/gpt-5-nano")
        monkeypatch.setenv(
            "KITARU_MODEL_REGISTRY",
            json.dumps(
                {"aliases": {"fast": {"model": "ollama/qwen3"}, "x": {"model": "openai/o3"}}}
            ),
        )
        data = json.loads(run_ok("model", "list", "-o", "json").stdout)
        assert data == {
            "default": "fast",
            "models": [
                {
                    "alias": "fast",
                    "model": "ollama/qwen3",
                    "secret": None,
                    "default": True,
                    "source": "environment",
                },
                {
                    "alias": "x",
                    "model": "openai/o3",
                    "secret": None,
                    "default": False,
                    "source": "environment",
                },
            ],
        }

    def test_invalid_environment_registry_fails_cleanly(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A broken KITARU_MODEL_REGISTRY is a clean error naming the variable."""
        monkeypatch.setenv("KITARU_MODEL_REGISTRY", "{oops")
        assert_clean_failure(run("model", "list"), "KITARU_MODEL_REGISTRY is not a valid")


class TestRemoveAndDefault:
    def test_default_switches_the_default(self) -> None:
        """default ALIAS makes that alias the default."""
        run_ok("model", "register", "fast", "--model", "openai/gpt-5-nano")
        run_ok("model", "register", "local", "--model", "ollama/llama3.2")
        result = run_ok("model", "default", "local")
        assert result.stdout == "Default alias is now 'local' (ollama/llama3.2).\n"
        assert load_local_registry().default == "local"

    def test_default_notes_an_environment_override(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """default warns when KITARU_MODEL_REGISTRY sets another default here."""
        run_ok("model", "register", "fast", "--model", "openai/gpt-5-nano")
        run_ok("model", "register", "local", "--model", "ollama/llama3.2")
        monkeypatch.setenv("KITARU_MODEL_REGISTRY", '{"default": "fast"}')
        data = json.loads(run_ok("model", "default", "local", "-o", "json").stdout)
        assert data == {
            "default": "local",
            "model": "ollama/llama3.2",
            "overridden_by_environment": "fast",
        }

    def test_remove_default_explains_there_is_none(self) -> None:
        """Removing the default alias says there is no default now and how to pick one."""
        run_ok("model", "register", "fast", "--model", "openai/gpt-5-nano")
        run_ok("model", "register", "local", "--model", "ollama/llama3.2")
        result = run_ok("model", "remove", "fast")
        assert "no default now" in result.stdout
        assert "kitaru model default ALIAS" in result.stdout
        assert json.loads(run_ok("model", "list", "-o", "json").stdout)["default"] is None

    def test_remove_json(self) -> None:
        """remove -o json reports the removed alias and the default left."""
        run_ok("model", "register", "fast", "--model", "openai/gpt-5-nano")
        run_ok("model", "register", "local", "--model", "ollama/llama3.2")
        data = json.loads(run_ok("model", "remove", "local", "-o", "json").stdout)
        assert data == {"removed": "local", "default": "fast"}

    @pytest.mark.parametrize("command", ["remove", "default"])
    def test_unknown_alias_fails_cleanly(self, command: str) -> None:
        """Removing or defaulting an unknown alias exits 1 with the known aliases listed."""
        run_ok("model", "register", "fast", "--model", "openai/gpt-5-nano")
        assert_clean_failure(run("model", command, "nope"), "registered aliases: fast")


def cli_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real ``kitaru`` command in a new process, importing this checkout's kitaru."""
    return subprocess.run(
        kitaru_command(*args),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


class TestConfigPathIsAFile:
    @pytest.mark.slow
    @pytest.mark.parametrize(
        "args",
        [
            ["model", "list"],
            ["secrets", "set", "creds", "--OPENAI_API_KEY=sk-x"],
            ["model", "register", "fast", "--model", "openai/gpt-4o"],
        ],
    )
    @pytest.mark.parametrize("under", [False, True])
    def test_cli_gives_one_line(self, tmp_path: Path, args: list[str], under: bool) -> None:
        """A KITARU_CONFIG_PATH that is (or is under) a file gives one line and exit 1."""
        in_the_way = tmp_path / "not-a-dir"
        in_the_way.write_text("x")
        config = in_the_way / "sub" if under else in_the_way
        env = child_env(KITARU_CONFIG_PATH=str(config), PYTHONPATH=str(REPO))
        result = cli_process(*args, env=env)
        assert_clean_error(result, "KITARU_CONFIG_PATH", str(in_the_way), "not a directory")
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    def test_python_api_raises_usage_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The library functions behind those commands raise KitaruUsageError, not OSError."""
        in_the_way = tmp_path / "not-a-dir"
        in_the_way.write_text("x")
        monkeypatch.setenv("KITARU_CONFIG_PATH", str(in_the_way))
        for action in (
            list_models,
            lambda: set_secret("creds", {"OPENAI_API_KEY": "sk-x"}),
            lambda: register_model("fast", "openai/gpt-4o"),
        ):
            with pytest.raises(KitaruUsageError, match="not a directory"):
                action()

    def test_missing_directory_is_still_fine(self, tmp_path: Path) -> None:
        """A config path that does not exist yet is created on first write, as before."""
        env = child_env(KITARU_CONFIG_PATH=str(tmp_path / "new" / "cfg"), PYTHONPATH=str(REPO))
        result = cli_process("model", "register", "fast", "--model", "openai/gpt-4o", env=env)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "new" / "cfg" / "models.json").is_file()
