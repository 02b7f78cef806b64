"""A real PostgreSQL server for the tests: ``initdb`` and ``pg_ctl`` on a unix socket.

The server listens on a socket in a private folder and, when asked (the tests' session
server is), also on a free TCP port of 127.0.0.1; it is stopped when the test session
ends. PostgreSQL refuses to run as root, so under root
(as in CI) the cluster belongs to the ``postgres`` user the distribution's package
creates, and is started through ``runuser``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "find_bindir", "running_server"]

_DB_USER = "kitaru"
_counter = itertools.count()


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest installed version), or None."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass
class PgServer:
    """One running cluster; ``url()`` names a fresh database on it."""

    bindir: Path
    root: Path
    socket_dir: Path
    run_as: str | None
    fsync: bool = True
    """Off for the tests' server (see ``pg_server``); on for the benchmarks' figures."""
    port: int | None = None
    """The TCP port it also listens on at 127.0.0.1; None: the socket alone (port 5432).
    The socket's name carries the port, so the socket URLs name it too."""

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql as the superuser; return its output."""
        done = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                str(self.socket_dir),
                "-U",
                _DB_USER,
                "-p",
                str(self.port or 5432),
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def url(self, database: str) -> str:
        """A libpq URL for ``database`` on this server's socket."""
        port = f"&port={self.port}" if self.port else ""
        return f"postgresql://{_DB_USER}@/{database}?host={self.socket_dir}{port}"

    def tcp_url(self, database: str) -> str:
        """A ``USER@HOST:PORT`` URL for ``database`` over TCP on 127.0.0.1."""
        assert self.port, "this server listens on its socket alone (running_server(tcp=True))"
        return f"postgresql://{_DB_USER}@127.0.0.1:{self.port}/{database}"

    def fresh_database(self) -> str:
        """Create a new, empty database; return its URL."""
        name = f"t{os.getpid()}_{next(_counter)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        log = self.root / "server.log"
        # initdb --auth=trust lets the user in over 127.0.0.1 as over the socket.
        listen = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            if self.port
            else ("-c listen_addresses=''")
        )
        subprocess.run(
            self._cmd(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-k {self.socket_dir} {listen} "
                f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200",
                "start",
            ),
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "stop"),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )


def _owner() -> tuple[str | None, int | None, int | None]:
    if os.geteuid() != 0:
        return None, None, None
    entry = pwd.getpwnam("postgres")
    return "postgres", entry.pw_uid, entry.pw_gid


def _free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def running_server(*, fsync: bool = True, tcp: bool = False) -> Iterator[PgServer]:
    """Start a throwaway PostgreSQL cluster (with ``tcp``, also on a free port of
    127.0.0.1); stop it and remove its files afterwards."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL is not installed: install the distribution's postgresql package "
            "(.ci/run does), then run the tests again."
        )
    user, uid, gid = _owner()
    root = Path(tempfile.mkdtemp(prefix="kitaru-pg-"))
    socket_dir = root / "sock"
    socket_dir.mkdir()
    if uid is not None and gid is not None:
        os.chmod(root, 0o755)
        for path in (root, socket_dir):
            os.chown(path, uid, gid)
    server = PgServer(
        bindir=bindir,
        root=root,
        socket_dir=socket_dir,
        run_as=user,
        fsync=fsync,
        port=_free_port() if tcp else None,
    )
    try:
        subprocess.run(
            server._cmd(
                str(bindir / "initdb"),
                "-D",
                str(server.data_dir),
                "-U",
                _DB_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- pytest fixtures (loaded as a plugin by conftest.py) ----------------------------------

import pytest  # noqa: E402  (the helpers above are usable without pytest)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole test session, stopped at its end.

    It runs with ``fsync=off``: the tests kill kitaru's processes and stop or restart
    this server, never the machine under it, and every commit still reaches the kernel
    before it returns, so nothing a test observes changes; the suite's thousands of
    commits just stop waiting for the disk. It also listens on 127.0.0.1 for the tests
    of ``USER@HOST:PORT`` URLs.
    """
    with running_server(fsync=False, tcp=True) as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return pg_server.fresh_database()
