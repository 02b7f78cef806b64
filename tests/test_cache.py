"""Checkpoint caching: opt-in reuse of outputs recorded by earlier executions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.config import configure, settings

RUNS: list[str] = []


@checkpoint
def fetch(url: str) -> str:
    RUNS.append(url)
    return f"page {url}"


@checkpoint(cache=True)
def always_cached(n: int) -> int:
    RUNS.append(f"always {n}")
    return n * 2


@checkpoint(cache=False)
def never_cached(n: int) -> int:
    RUNS.append(f"never {n}")
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


@pytest.fixture(autouse=True)
def fresh_runs() -> Iterator[None]:
    RUNS.clear()
    before = settings()
    yield
    configure(cache=before.cache, retries=before.retries)


class TestReuse:
    def test_same_code_and_arguments_reuse_the_recorded_output(self) -> None:
        """A second cached execution with the same arguments does not run the body."""
        first = cached_crawl.run("a")
        assert first.wait(timeout=30) == "page a"
        second = cached_crawl.run("a")
        assert second.wait(timeout=30) == "page a"
        assert RUNS == ["a"]
        call = KitaruClient().executions.get(second.exec_id).checkpoints[0]
        assert call.status == "completed"
        assert call.cached_from == first.exec_id

    def test_other_arguments_miss(self) -> None:
        """Different arguments run the body again."""
        cached_crawl.run("a").wait(timeout=30)
        cached_crawl.run("b").wait(timeout=30)
        assert RUNS == ["a", "b"]

    def test_off_by_default(self) -> None:
        """Without cache=True, every execution runs its checkpoints."""
        plain_crawl.run("a").wait(timeout=30)
        plain_crawl.run("a").wait(timeout=30)
        assert RUNS == ["a", "a"]

    def test_configure_turns_it_on(self) -> None:
        """kitaru.configure(cache=True) enables reuse for flows that do not choose."""
        kitaru.configure(cache=True)
        plain_crawl.run("a").wait(timeout=30)
        plain_crawl.run("a").wait(timeout=30)
        assert RUNS == ["a"]

    def test_checkpoint_setting_wins_over_the_flow(self) -> None:
        """cache= on a checkpoint overrides the flow's setting, both ways."""
        mixed.run(1).wait(timeout=30)
        mixed.run(1).wait(timeout=30)
        uncached_flow.run(3).wait(timeout=30)
        uncached_flow.run(3).wait(timeout=30)
        assert RUNS == ["never 1", "always 1", "never 1", "always 3"]


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
