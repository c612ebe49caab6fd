"""Incremental high-water marks per source, endpoint and partition, kept in small JSON files.

A mark advances only when an extraction finished: a failed run leaves it where it was, so
the next run asks again from the same point.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import orjson

from integration_platform.extraction.windows import UNPARTITIONED
from integration_platform.paths import check_component, path_under


class IncrementalState:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, source: str, endpoint: str) -> Path:
        what = "incremental state name"
        return path_under(self.root, source, f"{check_component(endpoint, what)}.json", what=what)

    def _read(self, source: str, endpoint: str) -> dict[str, str]:
        file = self._file(source, endpoint)
        if not file.exists():
            return {}
        marks: dict[str, str] = orjson.loads(file.read_bytes())
        return marks

    def get(self, source: str, endpoint: str, partition: str | None) -> str | None:
        return self._read(source, endpoint).get(partition or UNPARTITIONED)

    def set(self, source: str, endpoint: str, partition: str | None, mark: str) -> None:
        marks = self._read(source, endpoint)
        marks[partition or UNPARTITIONED] = mark
        file = self._file(source, endpoint)
        file.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename: a crash mid-write never leaves a half-written state file.
        handle, tmp = tempfile.mkstemp(dir=file.parent, prefix=".state-")
        with os.fdopen(handle, "wb") as out:
            out.write(orjson.dumps(marks, option=orjson.OPT_SORT_KEYS))
        os.replace(tmp, file)
