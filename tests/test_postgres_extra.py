"""The PostgreSQL store's driver is an extra: loaded only when a PostgreSQL store is
used, and its absence is one clear line, not a traceback."""

from __future__ import annotations

import subprocess
import sys

from helpers import TIMEOUT, child_env

_WITHOUT_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; "  # the import fails as if not installed
    "sys.argv = ['kitaru', *sys.argv[1:]]; "
    "from kitaru.cli import main; main()"
)


class TestTheDriverIsAnExtra:
    def test_kitaru_its_client_and_cli_load_without_psycopg(self) -> None:
        """Importing kitaru, the client and the CLI never loads psycopg."""
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, kitaru, kitaru.client, kitaru.cli; print('psycopg' in sys.modules)",
            ],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "False"

    def test_a_postgresql_store_without_psycopg_is_one_line_naming_the_extra(self) -> None:
        """Without psycopg, a command on a PostgreSQL store says which extra to install."""
        done = subprocess.run(
            [sys.executable, "-c", _WITHOUT_PSYCOPG, "executions", "list"],
            env=child_env(KITARU_STORE="postgresql://nobody@127.0.0.1:1/none"),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "pip install 'kitaru[postgres]'" in lines[0]
