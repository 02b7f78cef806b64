"""Running the real ``kitaru ui`` for the dashboard tests, and the executions it shows."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helpers

MOCK_REPLY = "Sorry for the trouble, your refund is on its way."


def desk_env(**changes: str | None) -> dict[str, str]:
    """The environment of a desk flow or a dashboard: this checkout's kitaru and tests."""
    env = helpers.child_env(KITARU_LLM_MOCK_RESPONSE=MOCK_REPLY, **changes)
    # The dashboard imports the flows' module to check a wait's answer and to resume.
    env["PYTHONPATH"] = os.pathsep.join([str(helpers.REPO), env["PYTHONPATH"]])
    return env


def run_desk(mode: str, **env: str) -> str:
    """Run ``tests.ui_flows.desk MODE`` to its end; return the execution id."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.ui_flows.desk", mode],
        cwd=helpers.REPO,
        env=desk_env(**env),
        capture_output=True,
        text=True,
        timeout=helpers.TIMEOUT,
        check=False,
    )
    first = next((line for line in proc.stdout.splitlines() if '{"exec_id"' in line), None)
    assert first is not None, (proc.returncode, proc.stdout, proc.stderr)
    # A checkpoint's print may share the line (it writes its newline apart).
    data, _ = json.JSONDecoder().raw_decode(first[first.index('{"exec_id"') :])
    exec_id: str = data["exec_id"]
    return exec_id


@contextlib.contextmanager
def desk_in_background(mode: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start ``tests.ui_flows.desk MODE`` and yield its execution id once it has one."""
    with helpers.background(
        [sys.executable, "-m", "tests.ui_flows.desk", mode], cwd=helpers.REPO, env=desk_env(**env)
    ) as proc:
        yield helpers.started(proc), proc


@dataclass
class Dashboard:
    """A running ``kitaru ui``: the URL it printed, its token, and its process."""

    url: str
    token: str
    proc: subprocess.Popen[str]

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    def request(
        self,
        path: str,
        *,
        token: str | None = "",
        method: str = "GET",
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """``(status, JSON body)`` of one HTTP request; ``token=None`` sends none."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token or self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:  # loopback only
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")


@contextlib.contextmanager
def dashboard(cwd: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[Dashboard]:
    """Start ``kitaru ui --port 0 --no-open`` (this checkout's) and stop it with SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "ui", "--port", "0", "--no-open", *extra],
        cwd=cwd,
        env=desk_env(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("kitaru ui: http://127.0.0.1:"), (line, proc.poll())
        url = line.split(": ", 1)[1].strip()
        yield Dashboard(url, url.split("token=", 1)[1], proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate(timeout=15)
