"""Shared fixtures: every test runs against its own config dir and journal.

A plain ``python -m pytest`` leaves out the tests marked ``slow`` (real subprocesses,
many executions); ``python -m pytest --all -n auto`` runs everything, as CI does.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import weakref
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from helpers import cached_stores, forget_stores_opened_since
from hypothesis import settings
from store_backends import BACKENDS, StoreBackend, postgres_backend

from kitaru import KitaruClient, KitaruStateError

# The fake provider server (tests/llm_server.py) and the PostgreSQL server
# (tests/pg_server.py) are plugins, so their fixtures reach every test module; loading
# them starts nothing until a test asks for a server.
pytest_plugins = ["llm_server", "pg_server"]

_CLEARED_ENV = (
    "KITARU_DEFAULT_MODEL",
    "KITARU_MODEL_REGISTRY",
    "KITARU_LLM_MOCK_RESPONSE",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENROUTER_API_KEY",
)

# Any provider request a test forgets to aim at the fake server lands on a closed local
# port (connection refused) instead of reaching a real provider.
_UNREACHABLE = "http://127.0.0.1:9"
_PROVIDER_URL_ENV = {
    "OPENAI_BASE_URL": f"{_UNREACHABLE}/v1",
    "ANTHROPIC_BASE_URL": _UNREACHABLE,
    "OLLAMA_HOST": _UNREACHABLE,
    "KITARU_OPENROUTER_BASE_URL": f"{_UNREACHABLE}/v1",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        help="run the tests marked slow too (CI runs everything; without it they are left out)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the slow tests out of a plain run, unless ``--all`` or a ``-m`` expression
    says which to run."""
    if config.getoption("--all") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Escape lone surrogates in captured output: tests write them on purpose (cut emoji),
    and a report is sent between the processes of a parallel run as strict UTF-8."""
    report = yield
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode("utf-8"))
        for title, text in report.sections
    ]
    return report


@pytest.fixture(autouse=True)
def _quiet_cli_logging() -> Iterator[None]:
    """The CLI adds a log handler on the runner's stderr; drop it when the test ends."""
    logger = logging.getLogger("kitaru")
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def cancel_leftover_executions() -> Iterator[None]:
    """Cancel what a failed test left running or waiting, so no flow thread outlives it."""
    yield
    client = KitaruClient()
    for execution in client.executions.list():
        if execution.status in ("running", "waiting"):
            with contextlib.suppress(KitaruStateError):
                client.executions.cancel(execution.exec_id)


@pytest.fixture(autouse=True)
def kitaru_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point kitaru's config dir and journal into ``tmp_path`` and clear provider settings."""
    config = tmp_path / "kitaru-config"
    monkeypatch.setenv("KITARU_CONFIG_PATH", str(config))
    monkeypatch.setenv("KITARU_STORE", str(tmp_path / "kitaru.db"))
    for name in _CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in _PROVIDER_URL_ENV.items():
        monkeypatch.setenv(name, value)
    return config


@pytest.fixture(autouse=True)
def _close_journals(kitaru_env: Path) -> Iterator[None]:
    """Close the journals the test opened through the store cache when it ends.

    The cache keeps each journal (file, WAL and shared-memory index) open for the life of
    the process; without this a full run piles up thousands of open files.
    """
    from kitaru.journal import sqlite as sqlite_journal

    before = cached_stores()
    existing = weakref.WeakSet(sqlite_journal._stores)
    yield
    forget_stores_opened_since(before)
    # Journals a test made itself (``SqliteStore(path)``) are closed too: their files
    # would otherwise stay open until the collector finds them.
    for store in list(sqlite_journal._stores):
        if store not in existing:
            store.close()
    # A finished run's connections on its own threads close when the cycles around them
    # are collected; collect when files pile up, or later tests run out of descriptors
    # that ``select`` (and other code) can use.
    if len(os.listdir("/proc/self/fd")) > 256:
        gc.collect()


# Hypothesis profiles. ``ci`` is the default: derandomized (the same examples on every
# run) and sized so the whole suite stays within minutes. ``long`` is for nightly runs
# (``pytest --hypothesis-profile=long``): many more, random examples. Expensive
# properties take a share of the profile's examples (``strategies.costly``).
settings.register_profile(
    "ci", derandomize=True, database=None, max_examples=50, deadline=None, print_blob=True
)
settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(
    params=BACKENDS, ids=lambda backend: backend if isinstance(backend, str) else backend.name
)
def store_backend(request: pytest.FixtureRequest) -> StoreBackend:
    """Each store backend in turn, for tests that hold for every backend (PostgreSQL on
    the session's own server, started on first use)."""
    if request.param == "postgresql":
        return postgres_backend(request.getfixturevalue("pg_server"))
    backend: StoreBackend = request.param
    return backend
