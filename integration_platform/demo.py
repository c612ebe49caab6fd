"""The headless demo: start the sandbox, pull every endpoint of every source, print a summary."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from integration_platform import environment
from integration_platform.extraction.state import IncrementalState
from integration_platform.extraction.to_files import extract_to_directory
from integration_platform.launcher import VENDOR_URL_VARIABLES
from integration_platform.sandbox.server import Sandbox
from integration_platform.sandbox.world import SandboxCredentials, SandboxSettings
from integration_platform.specs.loader import load_specs
from integration_platform.specs.models import SourceSpec


@dataclass(frozen=True)
class EndpointResult:
    source: str
    endpoint: str
    records: int
    pages: int
    requests: int
    seconds: float
    error: str | None = None


def run_demo(settings: SandboxSettings, echo: Callable[[str], None] = print) -> bool:
    """True when the sandbox came up and every endpoint of every source answered."""
    environment.load_sandbox_env()
    credentials = SandboxCredentials.from_env()
    with Sandbox(settings, credentials, base_port=0) as sandbox:
        echo(f"sandbox up: seed={settings.seed} customers={settings.customers}")
        for vendor, url in sandbox.urls.items():
            health = httpx.get(f"{url}/_sandbox/health", timeout=5).json()
            echo(f"  {vendor:<10} {url}  {health['status']}")
        env = {**os.environ, **{VENDOR_URL_VARIABLES[v]: u for v, u in sandbox.urls.items()}}
        specs = load_specs(env=env)
        with tempfile.TemporaryDirectory(prefix="demo-") as tmp:
            results = asyncio.run(_extract_all(specs, Path(tmp)))
    echo("")
    echo(f"{'endpoint':<28}{'records':>9}{'pages':>7}{'requests':>10}{'seconds':>9}")
    for r in results:
        line = f"{r.source + '.' + r.endpoint:<28}{r.records:>9}{r.pages:>7}{r.requests:>10}"
        echo(f"{line}{r.seconds:>9.2f}" + (f"  FAILED: {r.error}" if r.error else ""))
    failed = [r for r in results if r.error]
    echo("")
    names = ", ".join(f"{r.source}.{r.endpoint}" for r in failed)
    echo(f"{len(results) - len(failed)} of {len(results)} endpoints answered"
         + (f"; failed: {names}" if failed else ""))
    return not failed


async def _extract_all(specs: dict[str, SourceSpec], root: Path) -> list[EndpointResult]:
    results = []
    state = IncrementalState(root / "state")
    for name, spec in sorted(specs.items()):
        for endpoint in spec.endpoints:
            try:
                summary = await extract_to_directory(
                    spec, endpoint, root / name / endpoint, full_refresh=True, state=state)
            except Exception as exc:  # the demo reports every failure, then carries on
                results.append(EndpointResult(name, endpoint, 0, 0, 0, 0.0, str(exc)[:200]))
                continue
            results.append(EndpointResult(name, endpoint, summary.records, summary.pages,
                                          summary.requests, summary.seconds))
    return results
