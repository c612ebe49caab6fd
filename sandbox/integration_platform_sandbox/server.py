"""Runs the sandbox vendors as real HTTP servers on loopback, one uvicorn server each.

`Sandbox` binds its sockets first (base port 0 picks free ports), then serves either in the
foreground (the CLI) or in a background thread (tests and benchmarks). By default it serves
the four SaaS vendors; `vendors` picks others (the registry variant: clinic, insurer). Each
vendor has a fixed port offset from the base port, whichever others are served, and serves
`settings.tenants` tenants (see tenants.py).
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

from integration_platform_sandbox.chaos import ChaosEngine
from integration_platform_sandbox.population import mix64
from integration_platform_sandbox.roster import ALL_VENDORS, REGISTRY_VENDORS, VENDOR_SALT, VENDORS
from integration_platform_sandbox.tenants import Tenants
from integration_platform_sandbox.vendors import analytics, billing, clinic, crm, insurer, support
from integration_platform_sandbox.vendors.common import TruthRow
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings, World

AppFactory = Callable[[Tenants, ChaosEngine], ASGIApp]
VENDOR_APPS: dict[str, AppFactory] = {
    "crm": crm.create_app,
    "billing": billing.create_app,
    "support": support.create_app,
    "analytics": analytics.create_app,
    "clinic": clinic.create_app,
    "insurer": insurer.create_app,
}
VENDOR_TRUTH: dict[str, Callable[[World], Iterator[TruthRow]]] = {
    "crm": crm.ground_truth,
    "billing": billing.ground_truth,
    "support": support.ground_truth,
    "analytics": analytics.ground_truth,
    "clinic": clinic.ground_truth,
    "insurer": insurer.ground_truth,
}
DEFAULT_BASE_PORT = 8700
# CRM on the base port, billing +1, support +2, analytics +3, clinic +4, insurer +5.
PORT_OFFSETS = {vendor: offset for offset, vendor in enumerate(ALL_VENDORS)}
# What `--vendors` accepts besides vendor names.
VENDOR_GROUPS = {"saas": VENDORS, "registry": REGISTRY_VENDORS, "all": ALL_VENDORS}


def parse_vendors(text: str) -> tuple[str, ...]:
    """`crm,billing`, a group (saas, registry, all) or a mix, in port order, each once."""
    chosen: set[str] = set()
    for name in filter(None, (part.strip() for part in text.split(","))):
        if name in VENDOR_GROUPS:
            chosen.update(VENDOR_GROUPS[name])
        elif name in PORT_OFFSETS:
            chosen.add(name)
        else:
            raise ValueError(
                f"unknown vendor {name!r}: expected vendors "
                f"{', '.join(ALL_VENDORS)} or groups {', '.join(VENDOR_GROUPS)}"
            )
    if not chosen:
        raise ValueError("no vendor chosen")
    return tuple(vendor for vendor in ALL_VENDORS if vendor in chosen)


def vendor_urls(host: str, base_port: int, vendors: tuple[str, ...] = VENDORS) -> dict[str, str]:
    """Where each vendor listens when served from `base_port`."""
    return {vendor: f"http://{host}:{base_port + PORT_OFFSETS[vendor]}" for vendor in vendors}


class Sandbox:
    def __init__(
        self,
        settings: SandboxSettings,
        credentials: SandboxCredentials,
        host: str = "127.0.0.1",
        base_port: int = DEFAULT_BASE_PORT,
        vendors: tuple[str, ...] = VENDORS,
    ) -> None:
        self.tenants = Tenants(settings, credentials)
        self.world = self.tenants.world(0)  # the default tenant's
        self.host = host
        self.vendors = vendors
        self.engines = {
            vendor: ChaosEngine(settings.chaos, mix64(settings.seed, VENDOR_SALT[vendor]))
            for vendor in vendors
        }
        self._sockets: dict[str, socket.socket] = {}
        try:
            for vendor in vendors:
                self._sockets[vendor] = _bind(
                    host, base_port + PORT_OFFSETS[vendor] if base_port else 0
                )
        except OSError:
            for sock in self._sockets.values():
                sock.close()
            raise
        self.ports = {vendor: sock.getsockname()[1] for vendor, sock in self._sockets.items()}
        self.urls = {vendor: f"http://{host}:{port}" for vendor, port in self.ports.items()}
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None

    def _build_servers(self) -> list[uvicorn.Server]:
        servers = []
        for vendor in self.vendors:
            app = VENDOR_APPS[vendor](self.tenants, self.engines[vendor])
            config = uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=2,
            )
            servers.append(uvicorn.Server(config))
        return servers

    async def serve(self) -> None:
        """Serve until every server is told to exit (Ctrl-C in the foreground)."""
        self._servers = self._build_servers()
        await asyncio.gather(
            *(
                server.serve(sockets=[self._sockets[vendor]])
                for vendor, server in zip(self.vendors, self._servers, strict=True)
            )
        )

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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
