"""The processes' log files, read as they grow, and what each line is: a JSON log line, a
Dagster text line, a Python warning, a traceback's last line, or plain output."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# `2025-01-01 10:00:00 +0000 - dagster.daemon.SensorDaemon - WARNING - message`
DAGSTER_TEXT = re.compile(r" - (dagster[\w.]*) - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - (.*)$")
# `/path/module.py:232: BetaWarning: message` (what `warnings` prints on stderr)
PYTHON_WARNING = re.compile(r"^\S.*?:\d+: (\w*Warning): (.*)$")
# `ValueError: message`, the last line of a traceback
EXCEPTION = re.compile(r"^((?:\w+\.)*\w*(?:Error|Exception|Interrupt)): (.*)$")
# `WARNING:  message` (uvicorn's and logging.basicConfig's default format)
LEVEL_PREFIX = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):\s+(.*)$")
# Fields of a JSON line worth showing beside its event when it is a warning or an error.
NOTICE_FIELDS = ("source", "stream", "endpoint", "status", "reason", "error", "detail", "hint")
NOTICE_CHARS = 300
READ_AT_MOST = 4 * 1024 * 1024


@dataclass(frozen=True)
class LogLine:
    level: str | None
    """`debug` ... `critical`, or None for plain output."""
    event: str
    """The message (a JSON line's `event`)."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """A JSON line's other fields."""

    @property
    def is_notice(self) -> bool:
        """A warning or an error: the console shows it (once)."""
        return self.level in ("warning", "error", "critical")

    @property
    def notice(self) -> str:
        """The line as the console shows it: the message and its telling fields, shortened."""
        parts = [self.event]
        parts += [f"{key}={self.fields[key]}" for key in NOTICE_FIELDS if key in self.fields]
        exception = self.fields.get("exception")
        if isinstance(exception, str) and exception.strip():
            parts.append(exception.strip().splitlines()[-1])
        text = " ".join(str(part) for part in parts).replace("\n", " ")
        return text if len(text) <= NOTICE_CHARS else text[: NOTICE_CHARS - 3] + "..."


def parse_line(text: str) -> LogLine:
    """What one line of a process's output is."""
    text = ANSI.sub("", text).rstrip()
    if text.startswith("{"):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            level = parsed.pop("level", None)
            event = str(parsed.pop("event", ""))
            return LogLine(str(level).lower() if level else None, event, parsed)
    if match := DAGSTER_TEXT.search(text):
        return LogLine(match[2].lower(), match[3], {"logger": match[1]})
    if match := PYTHON_WARNING.match(text):
        return LogLine("warning", f"{match[1]}: {match[2]}")
    if match := EXCEPTION.match(text):
        return LogLine("error", text)
    if match := LEVEL_PREFIX.match(text):
        return LogLine(match[1].lower(), match[2])
    return LogLine(None, text)


_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_QUOTED = re.compile(r"`[^`]*`")
KEY_CHARS = 120


def notice_key(line: LogLine) -> str:
    """What makes two warnings the same one: the first sentence of their text, with run ids,
    `quoted` names and numbers masked (at most KEY_CHARS). So one notice about each of many
    things (dagster-dbt warns once per dbt source test it logs as an observation) is one
    notice, and so is a line Dagster's code server writes twice (its format, then ours with
    more of the text)."""
    text = line.notice
    if match := re.search(r"\b(\w*Warning): (.*)$", text):  # wherever the file and line were
        text = f"{match[1]}: {match[2]}"
    text = _QUOTED.sub("`…`", _UUID.sub("<id>", text))
    first_sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return re.sub(r"\d+", "#", first_sentence)[:KEY_CHARS]


class LogTail:
    """The lines a file gains, from where it ended when the tail was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def read(self) -> list[str]:
        """The complete lines written since the last read (a partial last line waits)."""
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read(READ_AT_MOST)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) == READ_AT_MOST:
            end = len(data)  # one very long line: take it in pieces
        self.offset += end
        return data[:end].decode("utf-8", errors="replace").splitlines()
