"""The console of `integration-platform up`: the children's log files watched, their warnings
and errors printed once each, a status line per child every interval, a line when one exits."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from integration_platform.console.log_lines import ANSI, LogTail, notice_key, parse_line
from integration_platform.console.status import LineProbe, Probe
from integration_platform.dagster_warnings import CONSOLE_QUIET

Echo = Callable[[str], None]
LAST_LINES_ON_EXIT = 8


@dataclass
class Child:
    """One process of the platform, its log file and what its status line reports."""

    name: str
    process: subprocess.Popen[bytes] | None
    """None for the launcher's own log: watched for warnings, without a status line."""
    log: Path
    tail: LogTail
    probe: Probe = field(default_factory=LineProbe)
    repeats: int = 0
    """Warnings and errors seen again since the last status line (printed once already)."""


class Console:
    def __init__(self, echo: Echo, *, status_every: float) -> None:
        self.echo = echo
        self.status_every = status_every
        self.seen: set[str] = set()
        self.width = 0

    def watch(self, children: Sequence[Child], *, poll_seconds: float = 1.0) -> Child:
        """Report until a child exits; that child."""
        self.width = max(len(child.name) for child in children)
        next_status = time.monotonic() + self.status_every
        while True:
            for child in children:
                self.read(child)
                if news := self._safely(child, child.probe.news):
                    self.echo(news)
            for child in children:
                if child.process is not None and child.process.poll() is not None:
                    self.read(child)
                    self.exited(child)
                    return child
            if time.monotonic() >= next_status:
                next_status += self.status_every
                for child in children:
                    if child.process is not None:
                        self.status(child)
            time.sleep(poll_seconds)

    def read(self, child: Child) -> None:
        """Feed the child's new log lines to its probe; print warnings and errors not seen."""
        for text in child.tail.read():
            line = parse_line(text)
            child.probe.observe(line)
            if not line.is_notice or any(quiet.search(line.event) for quiet in CONSOLE_QUIET):
                continue
            key = f"{child.name}|{notice_key(line)}"
            if key in self.seen:
                child.repeats += 1
                continue
            self.seen.add(key)
            self.echo(f"{self._label(child)} {line.level}: {line.notice}")

    def status(self, child: Child) -> None:
        text = self._safely(child, child.probe.report)
        if child.repeats:
            text = f"{text}; {count_repeats(child.repeats)}"
            child.repeats = 0
        self.echo(f"{self._label(child)} {text}")

    def exited(self, child: Child) -> None:
        code = child.process.returncode if child.process else None
        self.echo(f"{self._label(child)} EXITED with code {code}; the last lines of {child.log}:")
        for text in last_lines(child.log, LAST_LINES_ON_EXIT):
            self.echo(f"    {text}")

    def _label(self, child: Child) -> str:
        return f"[{child.name}]".ljust(self.width + 2)

    def _safely(self, child: Child, call: Callable[[], str | None]) -> str:
        # A status probe must never stop the platform: say what went wrong instead.
        try:
            return call() or ""
        except Exception as exc:
            return f"status unavailable ({type(exc).__name__}: {exc})"


def count_repeats(repeats: int) -> str:
    return f"{repeats:,} more warning(s)/error(s) like those above (see its log)"


def last_lines(path: Path, lines: int) -> list[str]:
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            log.seek(max(log.tell() - 16_384, 0))
            text = ANSI.sub("", log.read().decode("utf-8", errors="replace"))
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]
