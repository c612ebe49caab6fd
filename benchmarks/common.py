"""What the benchmarks share: the sandbox in its own process, and their sections of the README."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
README = REPO / "benchmarks" / "README.md"
README_HEADER = """\
# Benchmarks

Performance runs against the sandbox, kept out of the test suite (pytest only collects `tests/`).
Each section is rewritten by the command it names; the sandbox always runs in its own process.
"""


class CheckFailed(SystemExit):
    """A benchmark's correctness check failed: its figures are not to be trusted, the command
    exits with status 1 and says which check failed."""

    def __init__(self, message: str) -> None:
        print(f"CHECK FAILED: {message}", file=sys.stderr, flush=True)
        super().__init__(1)
        self.message = message


def require(ok: bool, message: str) -> None:
    """Fail the benchmark (exit status 1) unless `ok`: a wrong count, a lost row, a failed run."""
    if not ok:
        raise CheckFailed(message)


def busy(load: Sequence[float]) -> str:
    """What the load average around a run says about its wall-clock figures (2 cores)."""
    if max(load) < 1.5:
        return "a quiet machine: the benchmark's own processes only"
    return "other work shared the machine: wall-clock figures include it, CPU figures do not"


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the section marked `name` replaced by `body` (markers added here)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    # A new section goes after the sections already marked, else before the first other
    # section: a tool that rewrites "its section to the end of the file" then leaves it alone.
    ends = [match.end() for match in re.finditer(r"<!-- [\w-]+:end -->", text)]
    first_other = re.search(r"^## ", text, re.MULTILINE)
    at = ends[-1] if ends else first_other.start() if first_other else len(text)
    head, tail = text[:at].rstrip(), text[at:].lstrip()
    return f"{head}\n\n{block}\n" + (f"\n{tail}" if tail else "")


def write_readme(sections: dict[str, str]) -> None:
    """Rewrite these marked sections of benchmarks/README.md; the others stay as they are
    (the file is read just before writing: other benchmarks write it too)."""
    text = README.read_text() if README.exists() else README_HEADER
    for name, body in sections.items():
        text = replace_section(text, name, body)
    README.write_text(text)


class SandboxProcess:
    """`integration-platform sandbox up ARGS` as a child process on free ports, stopped on exit.

    `url` is the `vendor`'s base URL as the sandbox printed it; `get` calls it with `headers`.
    The sandbox runs in its own session, like an API on another machine: Linux shares CPU
    fairly between sessions first (autogroups), so a client's work does not come out of its
    share.
    """

    def __init__(
        self, args: Sequence[str], *, vendor: str = "billing", headers: dict[str, str] | None = None
    ) -> None:
        self.args, self.vendor, self.headers = list(args), vendor, headers or {}
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in __exit__)
            "w+", prefix="sandbox-", suffix=".log"
        )
        self._http: httpx.Client | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> SandboxProcess:
        script = Path(sys.executable).with_name("integration-platform")
        command = (
            [str(script)] if script.exists() else [sys.executable, "-m", "integration_platform.cli"]
        )
        command += ["sandbox", "up", "--base-port", "0", *self.args]
        self._process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        try:
            self.url = self._vendor_url(timeout=120)
            self._http = httpx.Client(base_url=self.url, timeout=120, headers=self.headers)
            self._wait_healthy(timeout=120)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _vendor_url(self, timeout: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._process.stdout

        def pump() -> None:  # drains stdout for the sandbox's whole life
            for line in stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, name="sandbox-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"the sandbox printed no URL within {timeout:.0f} s: {self._log_tail()}"
                ) from None
            if not line:
                raise RuntimeError(f"the sandbox exited while starting: {self._log_tail()}")
            match = re.match(rf"\s+{self.vendor}\s+(http://\S+)", line)
            if match:
                return match.group(1)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if self.get("/_sandbox/health").status_code == 200:
                    return
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"the sandbox exited while starting: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox was not healthy within {timeout:.0f} s")
            time.sleep(0.1)

    def _log_tail(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-2000:] or "(no output)"

    def get(self, path: str, **params: Any) -> httpx.Response:
        assert self._http is not None
        return self._http.get(path, params=params or None)

    def stats(self) -> dict[str, Any]:
        response = self.get("/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def cpu_seconds(self) -> float:
        """User + system CPU the sandbox process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


async def bare_pages(
    url: str, headers: dict[str, str], path: str, page_size: int, concurrency: int
) -> dict[str, float]:
    """The ceiling a client could reach: a plain httpx client over the engine's transport
    (`build_transport`, what `SourceClient` sends through), the engine's offset/limit pages with
    `concurrency` in flight, the first page alone to learn the total (as the engine does);
    bodies counted, not parsed, landed or loaded. Records, pages, bytes, wall and CPU seconds
    (this process's, which other load barely moves)."""
    import orjson

    from integration_platform.http.transport import build_transport

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    async with httpx.AsyncClient(
        base_url=url,
        headers=headers,
        transport=build_transport(concurrency),
        timeout=httpx.Timeout(30.0),
    ) as http:
        started, cpu_started = time.perf_counter(), cpu()
        first = await http.get(path, params={"offset": 0, "limit": page_size})
        first.raise_for_status()
        total = int(orjson.loads(first.content)["total"])
        got = {"records": min(page_size, total), "pages": 1, "bytes": len(first.content)}
        offsets = iter(range(page_size, total, page_size))

        async def worker() -> None:
            for offset in offsets:  # one shared iterator: each worker takes the next page
                response = await http.get(path, params={"offset": offset, "limit": page_size})
                response.raise_for_status()
                got["records"] += min(page_size, total - offset)
                got["pages"] += 1
                got["bytes"] += len(response.content)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {**got, "seconds": time.perf_counter() - started, "cpu_seconds": cpu() - cpu_started}
