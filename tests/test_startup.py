"""A fast start: ``import kitaru`` and ``kitaru --help`` load only what they use.

Each check runs in a fresh interpreter, since this test process has imported
everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

import kitaru
from kitaru.cli import COMMANDS, main
from tests import helpers

FIRST_USE_MODULES = ("structlog", "asyncio", "sqlite3", "openai", "anthropic", "opentelemetry")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=helpers.child_env(),
        capture_output=True,
        text=True,
        timeout=helpers.TIMEOUT,
        check=False,
    )


def _json_of(code: str) -> object:
    """Run ``code`` in a fresh interpreter and return the JSON it prints last."""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _kitaru(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        env=helpers.child_env(),
        capture_output=True,
        text=True,
        timeout=helpers.TIMEOUT,
        check=False,
    )


class TestImportLoadsLittle:
    def test_import_kitaru_loads_no_heavy_module(self) -> None:
        """``import kitaru`` loads no structlog, asyncio, sqlite3, provider SDK or OpenTelemetry."""
        loaded = _json_of(
            "import json, sys, kitaru; "
            f"print(json.dumps([m for m in {list(FIRST_USE_MODULES)!r} if m in sys.modules]))"
        )
        assert loaded == []

    def test_import_kitaru_loads_only_the_errors(self) -> None:
        """Of kitaru's own modules, ``import kitaru`` loads the package and its errors."""
        loaded = _json_of(
            "import json, sys, kitaru; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'kitaru')))"
        )
        assert loaded == ["kitaru", "kitaru.errors"]


class TestPublicNames:
    def test_every_public_name_imports_from_a_fresh_interpreter(self) -> None:
        """``from kitaru import *`` binds every public name, and none of them to a submodule."""
        wrong = _json_of(
            "import json, types, kitaru\n"
            "from kitaru import *\n"
            "names = dict(globals())\n"
            "print(json.dumps([n for n in kitaru.__all__ if names.get(n) is None\n"
            "    or names[n] is not getattr(kitaru, n)\n"
            "    or (isinstance(names[n], types.ModuleType) and n != 'memory')]))"
        )
        assert wrong == []

    def test_a_flow_runs_when_its_modules_were_loaded_before_the_names(
        self, tmp_path: Path
    ) -> None:
        """``@kitaru.flow`` works when the client and runtime loaded its modules first."""
        script = tmp_path / "pipeline.py"
        script.write_text(
            "import kitaru.client, kitaru.runtime.runner, kitaru._flow, kitaru\n"
            "@kitaru.checkpoint\n"
            "def double(x: int) -> int:\n"
            "    return 2 * x\n"
            "@kitaru.flow\n"
            "def pipeline(x: int) -> int:\n"
            "    return double(x) + 1\n"
            "if __name__ == '__main__':\n"
            "    print(pipeline.run(20).wait())\n"
        )
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=helpers.child_env(),
            capture_output=True,
            text=True,
            timeout=helpers.TIMEOUT,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == "41"

    def test_a_submodule_answers_as_an_attribute(self) -> None:
        """``kitaru.client`` is reachable after a bare ``import kitaru``, as it was."""
        name = _json_of("import json, kitaru; print(json.dumps(kitaru.client.__name__))")
        assert name == "kitaru.client"

    def test_an_unknown_name_is_an_attribute_error(self) -> None:
        """``kitaru.no_such_name`` raises AttributeError naming the attribute."""
        with pytest.raises(AttributeError, match="no_such_name"):
            kitaru.no_such_name  # noqa: B018  (the access is what is tested)

    def test_dir_lists_every_public_name(self) -> None:
        """``dir(kitaru)`` shows every name of ``__all__``, loaded or not."""
        assert set(kitaru.__all__) <= set(dir(kitaru))


class TestLoggingOnFirstUse:
    def test_structlog_loads_with_the_first_event_which_the_cli_handler_prints(self) -> None:
        """Logging turned on loads no structlog; the first event loads it and is printed."""
        proc = _python(
            "import sys\n"
            "from kitaru._logging import enable_cli_logging, get_logger\n"
            "log = get_logger(flow='pipeline')\n"
            "enable_cli_logging()\n"
            "assert 'structlog' not in sys.modules, 'structlog loaded before any event'\n"
            "log.info('execution completed', exec_id='abc123')\n"
            "assert 'structlog' in sys.modules\n"
        )
        assert proc.returncode == 0, proc.stderr
        assert "execution completed" in proc.stderr
        assert "exec_id=abc123" in proc.stderr
        assert "flow=pipeline" in proc.stderr


class TestDroppedEventsLoadNothing:
    def test_an_event_below_the_loggers_level_loads_no_structlog(self) -> None:
        """An event the ``kitaru`` logger would drop loads no structlog; one it keeps does."""
        proc = _python(
            "import logging, sys\n"
            "from kitaru._logging import get_logger\n"
            "log = get_logger()\n"
            "log.info('execution started', exec_id='abc123')\n"
            "log.debug('detail')\n"
            "assert 'structlog' not in sys.modules, 'structlog loaded for a dropped event'\n"
            "logging.basicConfig(level=logging.INFO)\n"
            "log.info('execution completed', exec_id='abc123')\n"
            "assert 'structlog' in sys.modules\n"
        )
        assert proc.returncode == 0, proc.stderr
        assert "execution started" not in proc.stderr
        assert "execution completed" in proc.stderr

    def test_a_run_and_its_retry_load_no_structlog_when_nothing_listens(
        self, tmp_path: Path
    ) -> None:
        """A flow that fails, then is retried, with logging left as it is, loads no structlog."""
        script = tmp_path / "retried.py"
        script.write_text(
            "import sys\n"
            "import kitaru\n"
            "from kitaru.client import KitaruClient\n"
            "FAIL = {'on': True}\n"
            "@kitaru.checkpoint\n"
            "def step(i: int) -> int:\n"
            "    if FAIL['on'] and i == 2:\n"
            "        raise RuntimeError('asked to fail')\n"
            "    return i + 1\n"
            "@kitaru.flow\n"
            "def chain(n: int) -> int:\n"
            "    value = 0\n"
            "    for _ in range(n):\n"
            "        value = step(value)\n"
            "    return value.load()\n"
            "if __name__ == '__main__':\n"
            "    handle = chain.run(4)\n"
            "    try:\n"
            "        handle.wait()\n"
            "    except Exception:\n"
            "        pass\n"
            "    FAIL['on'] = False\n"
            "    print(KitaruClient().executions.retry(handle.exec_id).wait())\n"
            "    print('structlog' in sys.modules)\n"
        )
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=helpers.child_env(
                KITARU_STORE=str(tmp_path / "kitaru.db"), PYTHONPATH=str(helpers.REPO)
            ),
            capture_output=True,
            text=True,
            timeout=helpers.TIMEOUT,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["4", "False"]


class TestHelp:
    def test_help_lists_every_command_with_its_help_line(self) -> None:
        """``kitaru --help`` lists each command with the first sentence of its docstring."""
        proc = _kitaru("--help")
        assert proc.returncode == 0, proc.stderr
        listed = proc.stdout.split("Commands:\n", 1)[1].splitlines()
        assert [line.split()[0] for line in listed] == sorted(COMMANDS)
        for line, name in zip(listed, sorted(COMMANDS), strict=True):
            words = COMMANDS[name].help.split()
            assert line.split()[1:3] == words[:2], line

    def test_help_imports_no_command_module(self) -> None:
        """``kitaru --help`` imports none of the command modules, nor the runtime."""
        loaded = _json_of(
            "import json, sys\n"
            "from kitaru.cli import main\n"
            "try:\n"
            "    main(['--help'], prog_name='kitaru')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('kitaru.'))))"
        )
        assert loaded == ["kitaru.cli", "kitaru.errors"]

    @pytest.mark.parametrize("name", sorted(COMMANDS))
    def test_table_matches_the_command_it_names(self, name: str) -> None:
        """Each row of the command table names its command and repeats its help."""
        entry = COMMANDS[name]
        command = main.get_command(click.Context(main, info_name="kitaru"), name)
        assert command is not None
        assert command.name == name
        assert command.callback is not None
        assert command.callback.__module__ == entry.module
        assert (command.help or "").split("\n\n")[0] == entry.help

    def test_a_command_runs_and_prints_its_own_help(self) -> None:
        """``kitaru model --help`` loads its module and shows that group's commands."""
        proc = _kitaru("model", "--help")
        assert proc.returncode == 0, proc.stderr
        assert "Usage: kitaru model" in proc.stdout
        assert "register" in proc.stdout

    def test_version_and_unknown_command_keep_their_exit_codes(self) -> None:
        """``kitaru -V`` exits 0 with the version; an unknown command exits 1."""
        version = _kitaru("-V")
        assert version.returncode == 0, version.stderr
        assert version.stdout.startswith("kitaru, version ")
        unknown = _kitaru("no-such-command")
        assert unknown.returncode == 1
        assert "No such command 'no-such-command'" in unknown.stderr
        assert "Traceback" not in unknown.stderr
