"""Serving the dashboard: bind, print the URL with its token, serve until stopped."""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
from dataclasses import dataclass, field
from types import FrameType

import uvicorn

from kitaru.client import KitaruClient
from kitaru.ui._app import create_app
from kitaru.ui._security import Credentials

__all__ = ["Dashboard", "is_loopback"]


def is_loopback(host: str) -> bool:
    """``host`` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """uvicorn's server, for which Ctrl-C or SIGTERM is the normal way to stop.

    uvicorn raises a signal it handled again once it has shut down, so that a program
    embedding it dies of it; here the command then ends cleanly instead.
    """

    def __init__(self, config: uvicorn.Config, stopped: threading.Event) -> None:
        super().__init__(config)
        self._stopped = stopped

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()

    async def on_tick(self, counter: int) -> bool:
        # A stop asked for before uvicorn took over the signals still stops it.
        return self._stopped.is_set() or await super().on_tick(counter)


@dataclass
class Dashboard:
    """One launch: its socket, its credentials and its URL."""

    client: KitaruClient
    host: str = "127.0.0.1"
    port: int = 8765
    credentials: Credentials = field(default_factory=Credentials)
    _socket: socket.socket | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    def bind(self) -> str:
        """Listen on host:port (port 0 picks a free one); return the URL to open."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        self._socket = sock
        if threading.current_thread() is threading.main_thread():
            # From the moment the URL can be used, Ctrl-C means "stop serving".
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self._stopped.set())
        self.port = sock.getsockname()[1]
        # Cookies are not kept apart by port: one cookie name per launch's port.
        self.credentials = Credentials(
            token=self.credentials.token,
            csrf=self.credentials.csrf,
            cookie_name=f"kitaru_ui_{self.port}",
        )
        shown_host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown_host}:{self.port}/?token={self.credentials.token}"

    def serve(self) -> None:
        """Serve until Ctrl-C or SIGTERM; then close the socket."""
        assert self._socket is not None, "bind() first"
        app = create_app(self.client, self.credentials)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            lifespan="off",
        )
        try:
            if not self._stopped.is_set():
                _Server(config, self._stopped).run(sockets=[self._socket])
        finally:
            self._socket.close()
