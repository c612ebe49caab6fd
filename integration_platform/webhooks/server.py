"""Serves the receiver with uvicorn (uvloop, httptools), in the foreground or from a thread.

Connections are bounded by `serving.ClientLimits` (slow clients are cut off) and uvicorn logs
through the project's JSON logging (see `integration_platform.serving`).

The socket is bound here, before uvicorn starts, so port 0 works (the URL is known at once)
and the socket says it is TCP: asyncio sets TCP_NODELAY on accepted connections only then,
and without it Nagle's algorithm and delayed ACKs add ~40 ms to answers on kept-alive
connections, most of the acknowledgement budget.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

import uvicorn
import uvloop
from starlette.types import ASGIApp

from integration_platform.serving import ClientLimits, uvicorn_config

DEFAULT_PORT = 8710


def bind(host: str, port: int, name: str = "webhook receiver") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({exc.strerror}): is another {name} "
            "running? Pick another port with --port"
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def server_config(app: ASGIApp, limits: ClientLimits | None = None) -> uvicorn.Config:
    """The settings the receiver runs with (the benchmark serves its baseline with these too):
    uvloop and httptools, slow clients cut off after `limits`, logs as JSON lines."""
    return uvicorn_config(
        app,
        limits=limits,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        backlog=2048,
    )


class ReceiverServer:
    """Any of the platform's ASGI apps on uvicorn (the webhook receiver, the API), with the
    slow-client limits."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        limits: ClientLimits | None = None,
        name: str = "webhook receiver",
    ) -> None:
        self.host, self.name = host, name
        self._socket = bind(host, port, name)
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(server_config(app, limits))
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in the foreground until interrupted (SIGINT / SIGTERM)."""
        uvloop.run(self._server.serve(sockets=[self._socket]))

    def start(self, timeout: float = 10.0) -> ReceiverServer:
        """Serve from a background thread; return once it accepts requests."""
        self._thread = threading.Thread(
            target=self._serve_in_thread, name=self.name.replace(" ", "-"), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the {self.name} stopped while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the {self.name} did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def _serve_in_thread(self) -> None:
        # Signal handlers belong to the main thread; uvicorn skips them off it.
        uvloop.run(self._server.serve(sockets=[self._socket]))

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self._socket.close()

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
