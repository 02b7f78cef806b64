"""The public surface: what ``kitaru`` exports, which modules are public, where errors live.

Implementation modules are private (``_``-prefixed); users reach for ``kitaru``,
``kitaru.client``, ``kitaru.errors`` and ``kitaru.memory`` (and ``kitaru.config``, the
path Kitaru's programs import model look-up from). The layers below them
(``runtime``, ``replay``, ``journal``) keep plain names because they are the layers
the architecture is drawn in, and ``cli`` is the command line.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import kitaru
import kitaru.client
import kitaru.errors
from tests.helpers import REPO, child_env

PUBLIC_MODULES = {
    "adapters",
    "cli",
    "client",
    "config",
    "errors",
    "journal",
    "mcp",
    "memory",
    "replay",
    "runtime",
    "ui",
}


def _isort_order(names: list[str]) -> list[str]:
    """Sorted as isort (and ruff) sort ``__all__``: CONSTANTS, then Classes, then the rest."""
    return sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[:1].isupper() else 2, n))


def _all_modules() -> list[types.ModuleType]:
    found = [kitaru]
    for info in pkgutil.walk_packages(kitaru.__path__, prefix="kitaru."):
        if info.name == "kitaru.__main__":
            continue
        found.append(importlib.import_module(info.name))
    return found


class TestTopLevel:
    def test_all_is_sorted_and_unique(self) -> None:
        """``kitaru.__all__`` is sorted and names each export once."""
        assert kitaru.__all__ == _isort_order(list(set(kitaru.__all__)))

    def test_all_is_complete(self) -> None:
        """Every public attribute of ``kitaru`` (other than its modules) is in ``__all__``."""
        public = {
            name
            for name, value in vars(kitaru).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }
        assert public - set(kitaru.__all__) == set()

    def test_every_name_in_all_exists(self) -> None:
        """Each name ``__all__`` promises can be imported."""
        for name in kitaru.__all__:
            assert getattr(kitaru, name) is not None, name

    def test_public_calls_are_not_shadowed_modules(self) -> None:
        """``kitaru.flow``, ``kitaru.checkpoint`` and ``kitaru.wait`` are the functions,
        and no submodule of the same name hides behind them."""
        for name in ("flow", "checkpoint", "wait", "llm", "log", "save", "load"):
            assert callable(getattr(kitaru, name))
            assert f"kitaru.{name}" not in sys.modules, name

    def test_only_the_drawn_modules_are_public(self) -> None:
        """Top-level modules without a leading underscore are exactly the public ones."""
        names = {
            info.name
            for info in pkgutil.iter_modules(kitaru.__path__)
            if not info.name.startswith("_")
        }
        assert names == PUBLIC_MODULES

    def test_every_error_is_exported(self) -> None:
        """Each error class in ``kitaru.errors`` is exported by ``kitaru`` as well."""
        assert set(kitaru.errors.__all__) <= set(kitaru.__all__)


class TestClientSurface:
    def test_client_all_is_sorted_and_exists(self) -> None:
        """``kitaru.client.__all__`` is sorted, and every name in it exists."""
        assert kitaru.client.__all__ == _isort_order(list(set(kitaru.client.__all__)))
        for name in kitaru.client.__all__:
            assert hasattr(kitaru.client, name), name

    def test_reading_executions_does_not_import_what_runs_them(self, tmp_path: Path) -> None:
        """A client that lists and reads executions (what every CLI listing is) starts
        without the runner, the flow machinery or the model-call layer."""
        script = (
            "import sys\n"
            "from kitaru.client import KitaruClient\n"
            "client = KitaruClient()\n"
            "client.executions.list()\n"
            "heavy = ('kitaru.runtime.runner', 'kitaru._flow', 'kitaru._llm', 'kitaru.memory')\n"
            "print(sorted(name for name in heavy if name in sys.modules))\n"
        )
        env = child_env(
            PYTHONPATH=str(REPO),
            KITARU_STORE=str(tmp_path / "kitaru.db"),
            KITARU_CONFIG_PATH=str(tmp_path / "config"),
        )
        done = subprocess.run(
            [sys.executable, "-P", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"
        # The names imported on first use are still there for whoever asks.
        assert kitaru.client.Verification.__name__ == "Verification"
        assert kitaru.client.RecoveryResult.__name__ == "RecoveryResult"
        assert kitaru.client.IntegrityReport.__name__ == "IntegrityReport"


class TestErrorTree:
    def test_every_public_error_lives_in_errors(self) -> None:
        """Every public ``KitaruError`` subclass is defined in ``kitaru.errors`` and listed
        in its ``__all__`` (and so drawn in its tree)."""
        strays = []
        for module in _all_modules():
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, kitaru.errors.KitaruError)
                    and not name.startswith("_")
                    and value.__module__ != "kitaru.errors"
                ):
                    strays.append(f"{value.__module__}.{name}")
        assert strays == []
        defined = {
            name
            for name, value in vars(kitaru.errors).items()
            if inspect.isclass(value) and issubclass(value, kitaru.errors.KitaruError)
        }
        assert defined <= set(kitaru.errors.__all__)
        tree = kitaru.errors.__doc__ or ""
        assert [name for name in defined if name not in tree] == []

    def test_wait_timeout_is_a_usage_error(self, tmp_path: Path) -> None:
        """``FlowHandle.wait`` with a negative timeout raises ``KitaruUsageError``."""
        from kitaru._flow_handle import FlowHandle
        from kitaru._stores import open_store

        store = open_store(f"{tmp_path}/kitaru.db")
        with pytest.raises(kitaru.KitaruUsageError, match="timeout"):
            FlowHandle("nothing", store=store).wait(timeout=-1)


class TestLayers:
    def test_import_linter_contracts_hold(self) -> None:
        """``lint-imports`` keeps every layer contract in ``pyproject.toml``."""
        done = subprocess.run(
            [sys.executable, "-c", "import importlinter.cli as c; c.lint_imports_command()"],
            cwd=REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
