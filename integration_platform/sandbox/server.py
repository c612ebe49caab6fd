"""Runs the four sandbox vendors as real HTTP servers on loopback, one uvicorn server each.

`Sandbox` binds its sockets first (base port 0 picks free ports), then serves either in the
foreground (the CLI) or in a background thread (tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

import uvicorn
import uvloop
from starlette.types import ASGIApp

from integration_platform.sandbox.chaos import ChaosEngine
from integration_platform.sandbox.population import mix64
from integration_platform.sandbox.roster import VENDOR_SALT, VENDORS
from integration_platform.sandbox.vendors import analytics, billing, crm, support
from integration_platform.sandbox.vendors.common import TruthRow
from integration_platform.sandbox.world import SandboxCredentials, SandboxSettings, World

AppFactory = Callable[[World, ChaosEngine], ASGIApp]
VENDOR_APPS: dict[str, AppFactory] = {
    "crm": crm.create_app,
    "billing": billing.create_app,
    "support": support.create_app,
    "analytics": analytics.create_app,
}
VENDOR_TRUTH: dict[str, Callable[[World], Iterator[TruthRow]]] = {
    "crm": crm.ground_truth,
    "billing": billing.ground_truth,
    "support": support.ground_truth,
    "analytics": analytics.ground_truth,
}
DEFAULT_BASE_PORT = 8700


class Sandbox:
    def __init__(self, settings: SandboxSettings, credentials: SandboxCredentials,
                 host: str = "127.0.0.1", base_port: int = DEFAULT_BASE_PORT) -> None:
        self.world = World(settings, credentials)
        self.host = host
        self.engines = {
            vendor: ChaosEngine(settings.chaos, mix64(settings.seed, VENDOR_SALT[vendor]))
            for vendor in VENDORS
        }
        self._sockets = {
            vendor: _bind(host, base_port + offset if base_port else 0)
            for offset, vendor in enumerate(VENDORS)
        }
        self.ports = {vendor: sock.getsockname()[1] for vendor, sock in self._sockets.items()}
        self.urls = {vendor: f"http://{host}:{port}" for vendor, port in self.ports.items()}
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None

    def _build_servers(self) -> list[uvicorn.Server]:
        servers = []
        for vendor in VENDORS:
            app = VENDOR_APPS[vendor](self.world, self.engines[vendor])
            config = uvicorn.Config(app, log_level="warning", access_log=False,
                                    lifespan="on", timeout_graceful_shutdown=2)
            servers.append(uvicorn.Server(config))
        return servers

    async def serve(self) -> None:
        """Serve until every server is told to exit (Ctrl-C in the foreground)."""
        self._servers = self._build_servers()
        await asyncio.gather(*(
            server.serve(sockets=[self._sockets[vendor]])
            for vendor, server in zip(VENDORS, self._servers, strict=True)
        ))

    def run(self) -> None:
        # uvloop, as uvicorn itself would pick: the sandbox must not be the bottleneck of
        # the throughput benchmarks that run against it.
        uvloop.run(self.serve())

    def start(self, timeout: float = 15.0) -> Sandbox:
        """Serve from a background thread; return once every vendor accepts requests."""
        self._thread = threading.Thread(target=self.run, name="sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not (self._servers and all(s.started for s in self._servers)):
            if not self._thread.is_alive():
                raise RuntimeError("the sandbox stopped while starting: see the log above")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the sandbox did not start within {timeout} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        for sock in self._sockets.values():
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP, and without it Nagle + delayed ACK add 40 ms to every response
    # on a keep-alive connection (measured: 44 ms per request, 0.7 ms with it).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({exc.strerror}): is another sandbox running? "
            "Stop it or choose another --base-port."
        ) from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock
