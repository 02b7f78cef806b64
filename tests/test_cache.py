"""Checkpoint caching: opt-in reuse of outputs recorded by earlier executions."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, child_env

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru._run_config import configure, runtime_layer


def _ran(tag: str) -> None:
    # A file named by the environment, not a module-level list: the cache key covers
    # the globals a body reads, so a list the body appends to would change every key.
    with open(os.environ["CACHE_TEST_RUNS"], "a", encoding="utf-8") as file:
        file.write(tag + "\n")


def runs() -> list[str]:
    """Every checkpoint body run so far in this test, in order."""
    path = Path(os.environ["CACHE_TEST_RUNS"])
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@checkpoint
def fetch(url: str) -> str:
    _ran(url)
    return f"page {url}"


@checkpoint(cache=True)
def always_cached(n: int) -> int:
    _ran(f"always {n}")
    return n * 2


@checkpoint(cache=False)
def never_cached(n: int) -> int:
    _ran(f"never {n}")
    return n + 1


@flow(cache=True)
def cached_crawl(url: str) -> str:
    return fetch(url).load()


@flow
def plain_crawl(url: str) -> str:
    return fetch(url).load()


@flow(cache=True)
def mixed(n: int) -> tuple[int, int]:
    return (never_cached(n).load(), always_cached(n).load())


@flow
def uncached_flow(n: int) -> int:
    return always_cached(n).load()


def make_scaler(factor: int) -> Any:
    """Checkpoints made by one factory: same code, different closed-over values."""

    @checkpoint(cache=True)
    def scale(x: int) -> int:
        _ran(f"scale {factor}")
        return x * factor

    return scale


double, triple = make_scaler(2), make_scaler(3)


@flow
def scaled(x: int) -> list[int]:
    return [double(x).load(), triple(x).load()]


RATE = 2


@checkpoint(cache=True)
def priced(x: int) -> int:
    _ran(f"priced {x}")
    return x * RATE


@flow
def pricing(x: int) -> int:
    return priced(x).load()


OFFSET = 100


def _shift(x: int) -> int:
    return x + OFFSET


@checkpoint(cache=True)
def shifted(x: int) -> int:
    _ran(f"shifted {x}")
    return _shift(x)


@flow
def shifting(x: int) -> int:
    return shifted(x).load()


settings_module: Any = None
"""A project module the next checkpoint reads an attribute of (set by the test)."""


@checkpoint(cache=True)
def from_settings(x: int) -> int:
    _ran(f"from_settings {x}")
    return x * settings_module.FACTOR


@flow
def with_settings(x: int) -> int:
    return from_settings(x).load()


GUARD = threading.Lock()


@checkpoint(cache=True)
def guarded(x: int) -> int:
    _ran(f"guarded {x}")
    with GUARD:
        return x + 1


@flow
def guarding(x: int) -> int:
    return guarded(x).load()


@pytest.fixture(autouse=True)
def fresh_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CACHE_TEST_RUNS", str(tmp_path / "runs.txt"))
    before = runtime_layer()
    yield
    configure(cache=before.cache, retries=before.retries)


class TestReuse:
    def test_same_code_and_arguments_reuse_the_recorded_output(self) -> None:
        """A second cached execution with the same arguments does not run the body."""
        first = cached_crawl.run("a")
        assert first.wait(timeout=30) == "page a"
        second = cached_crawl.run("a")
        assert second.wait(timeout=30) == "page a"
        assert runs() == ["a"]
        call = KitaruClient().executions.get(second.exec_id).checkpoints[0]
        assert call.status == "completed"
        assert call.cached_from == first.exec_id

    def test_other_arguments_miss(self) -> None:
        """Different arguments run the body again."""
        cached_crawl.run("a").wait(timeout=30)
        cached_crawl.run("b").wait(timeout=30)
        assert runs() == ["a", "b"]

    def test_off_by_default(self) -> None:
        """Without cache=True, every execution runs its checkpoints."""
        plain_crawl.run("a").wait(timeout=30)
        plain_crawl.run("a").wait(timeout=30)
        assert runs() == ["a", "a"]

    def test_configure_turns_it_on(self) -> None:
        """kitaru.configure(cache=True) enables reuse for flows that do not choose."""
        kitaru.configure(cache=True)
        plain_crawl.run("a").wait(timeout=30)
        plain_crawl.run("a").wait(timeout=30)
        assert runs() == ["a"]

    def test_checkpoint_setting_wins_over_the_flow(self) -> None:
        """cache= on a checkpoint overrides the flow's setting, both ways."""
        mixed.run(1).wait(timeout=30)
        mixed.run(1).wait(timeout=30)
        uncached_flow.run(3).wait(timeout=30)
        uncached_flow.run(3).wait(timeout=30)
        assert runs() == ["never 1", "always 1", "never 1", "always 3"]


class TestKey:
    def test_changed_code_misses(self, tmp_path: Path) -> None:
        """Editing the checkpoint's code changes its key, so the old output is not reused."""
        from kitaru.runtime.caching import code_fingerprint

        def v1(x: int) -> int:
            return x + 1

        def v2(x: int) -> int:
            return x + 2

        v2.__qualname__ = v1.__qualname__
        assert code_fingerprint(v1) != code_fingerprint(v2)

    def test_unencodable_arguments_are_not_cached(self) -> None:
        """Arguments that cannot be stored give no key: the call simply runs."""
        from kitaru.runtime.caching import cache_key

        assert cache_key("f", (object(),), {}) is None
        assert cache_key("f", (1,), {"b": 2, "a": 1}) == cache_key("f", (1,), {"a": 1, "b": 2})


class TestKeyCoversWhatTheCodeReads:
    def test_checkpoints_of_one_factory_do_not_share_outputs(self) -> None:
        """Two closures over different values get different keys and their own outputs."""
        assert scaled.run(10).wait(timeout=30) == [20, 30]
        assert scaled.run(10).wait(timeout=30) == [20, 30]
        assert runs() == ["scale 2", "scale 3"]

    def test_a_changed_module_constant_misses(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """After a module-level constant the body reads changes, the body runs again."""
        assert pricing.run(10).wait(timeout=30) == 20
        assert pricing.run(10).wait(timeout=30) == 20
        monkeypatch.setattr(sys.modules[__name__], "RATE", 3)
        assert pricing.run(10).wait(timeout=30) == 30
        assert runs() == ["priced 10", "priced 10"]

    def test_a_constant_read_by_a_helper_function_counts(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A global read by a function the body calls is part of the key too."""
        assert shifting.run(1).wait(timeout=30) == 101
        monkeypatch.setattr(sys.modules[__name__], "OFFSET", 200)
        assert shifting.run(1).wait(timeout=30) == 201
        assert shifting.run(1).wait(timeout=30) == 201
        assert runs() == ["shifted 1", "shifted 1"]

    def test_an_attribute_of_a_project_module_counts(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``module.NAME`` read off a project module is fingerprinted by value."""
        (tmp_path / "cache_settings_mod.py").write_text("FACTOR = 2\n", encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path))
        module = importlib.import_module("cache_settings_mod")
        monkeypatch.setattr(sys.modules[__name__], "settings_module", module)
        assert with_settings.run(5).wait(timeout=30) == 10
        assert with_settings.run(5).wait(timeout=30) == 10
        monkeypatch.setattr(module, "FACTOR", 7)
        assert with_settings.run(5).wait(timeout=30) == 35
        assert runs() == ["from_settings 5", "from_settings 5"]

    def test_what_cannot_be_fingerprinted_is_not_cached_and_logged_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A body reading a lock runs every time, and the log says why exactly once."""
        with caplog.at_level(logging.WARNING, logger="kitaru"):
            for _ in range(3):
                assert guarding.run(1).wait(timeout=30) == 2
        assert runs() == ["guarded 1"] * 3
        notes = [r for r in caplog.records if "not cached" in r.getMessage()]
        assert len(notes) == 1, [r.getMessage() for r in notes]
        assert "GUARD" in str(notes[0].__dict__)

    def test_closure_values_and_defaults_change_the_fingerprint(self) -> None:
        """Same code over other closed-over values or defaults gives another fingerprint."""
        from kitaru.runtime.caching import code_fingerprint

        def with_default(limit: int = 1) -> int:
            return limit

        other = types.FunctionType(
            with_default.__code__, with_default.__globals__, "with_default", (2,)
        )
        other.__qualname__ = with_default.__qualname__
        assert code_fingerprint(double.func) != code_fingerprint(triple.func)
        assert code_fingerprint(make_scaler(2).func) == code_fingerprint(double.func)
        assert code_fingerprint(with_default) != code_fingerprint(other)


SCRIPT = """
import json, os, sys
from kitaru import checkpoint, flow

RATE = {rate}
LABELS = {{"kind": "price", "tags": ("a", "b")}}


def _helper(x):
    return x * RATE


@checkpoint
def price(x: int) -> int:
    with open(os.environ["CACHE_TEST_RUNS"], "a") as file:
        file.write(f"price {{x}}\\n")
    return _helper(x) + len(LABELS)


@flow(cache=True)
def shop(x: int) -> int:
    return price(x).load()


if __name__ == "__main__":
    print(json.dumps(shop.run(int(sys.argv[1])).wait(timeout=60)))
"""


class TestKeyAcrossProcesses:
    @pytest.mark.slow
    def test_a_new_process_hits_and_an_edited_constant_misses(self, tmp_path: Path) -> None:
        """The key is stable between processes, and editing a constant in the file misses."""
        script = tmp_path / "shop.py"
        env = child_env(PYTHONPATH=str(REPO))

        def run(rate: int) -> int:
            script.write_text(SCRIPT.format(rate=rate), encoding="utf-8")
            result = subprocess.run(
                [sys.executable, str(script), "10"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            return int(result.stdout.strip().splitlines()[-1])

        assert run(2) == 22
        assert run(2) == 22
        assert run(3) == 32
        assert runs() == ["price 10", "price 10"]
