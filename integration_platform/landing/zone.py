"""The landing zone: each page exactly as received, gzipped, with a manifest that is the checkpoint.

Layout: `<root>/<source>/<endpoint>/<partition>/<attempt>/page-000001.json.gz` plus
`manifest.jsonl` (one line per page, appended only after the page file is in place) and
`COMPLETE` once the extraction finished. A run that dies mid-extraction leaves an attempt
without `COMPLETE`; the next run of that partition continues it after its last manifest line.
"""

from __future__ import annotations

import builtins
import gzip
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from integration_platform.http.pagination import PageRequest

UNPARTITIONED = "__all__"
MANIFEST = "manifest.jsonl"
COMPLETE = "COMPLETE"


@dataclass(frozen=True)
class PageEntry:
    """One manifest line: a page that landed whole."""

    page: int
    file: str
    records: int
    bytes: int
    sha256: str
    url: str
    fetched_at: str
    run_id: str
    request: dict[str, Any]
    next_request: dict[str, Any] | None
    graphql_errors: list[Any]

    @classmethod
    def from_line(cls, line: builtins.bytes) -> PageEntry:
        return cls(**orjson.loads(line))


class Attempt:
    """One extraction of one partition, possibly continued across several runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST

    @property
    def complete(self) -> bool:
        return (self.folder / COMPLETE).exists()

    def entries(self) -> list[PageEntry]:
        """Every page whose manifest line was written whole (a torn last line is ignored)."""
        return self._whole_lines()[0]

    def _whole_lines(self) -> tuple[list[PageEntry], int]:
        """The entries of the manifest's whole lines, and how many bytes those lines take."""
        if not self.manifest_path.exists():
            return [], 0
        entries, size = [], 0
        for line in self.manifest_path.read_bytes().split(b"\n")[:-1]:  # each ends in \n
            try:
                entries.append(PageEntry.from_line(line))
            except (orjson.JSONDecodeError, TypeError):
                break  # the process died while appending this line: the page did not land
            size += len(line) + 1
        return entries, size

    def resume_point(self) -> tuple[int, PageRequest | None, bool]:
        """(pages already landed, request to continue with, whether nothing is left to fetch).

        A torn last line (the process died appending it) is cut off first: the pages landed
        next must follow the whole lines, or the tear would hide them from every reader.
        """
        entries, size = self._whole_lines()
        if self.manifest_path.exists() and self.manifest_path.stat().st_size > size:
            with self.manifest_path.open("r+b") as manifest:
                manifest.truncate(size)
        if not entries:
            return 0, None, False
        last = entries[-1]
        if last.next_request is None:
            return len(entries), None, True
        return len(entries), PageRequest.from_checkpoint(last.next_request), False

    def write_page(self, number: int, content: bytes, *, records: int, url: str,
                   fetched_at: datetime, run_id: str, request: PageRequest,
                   next_request: PageRequest | None,
                   graphql_errors: list[Any] | None = None) -> PageEntry:
        """Land one page: file first (atomically), then its manifest line."""
        name = f"page-{number:06d}.json.gz"
        target = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        # Level 1: the landing zone is written once and read once; speed beats ratio here.
        tmp.write_bytes(gzip.compress(content, compresslevel=1, mtime=0))
        os.replace(tmp, target)
        entry = PageEntry(
            page=number, file=name, records=records, bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(), url=url,
            fetched_at=fetched_at.astimezone(UTC).isoformat(), run_id=run_id,
            request=request.to_checkpoint(),
            next_request=next_request.to_checkpoint() if next_request else None,
            graphql_errors=graphql_errors or [])
        with self.manifest_path.open("ab") as manifest:
            manifest.write(orjson.dumps(entry.__dict__) + b"\n")
            manifest.flush()
            os.fsync(manifest.fileno())
        return entry

    def mark_complete(self) -> None:
        (self.folder / COMPLETE).write_text(datetime.now(UTC).isoformat())

    def page_files(self) -> list[Path]:
        return [self.folder / entry.file for entry in self.entries()]


class LandingZone:
    def __init__(self, root: Path) -> None:
        self.root = root

    def partition_folder(self, source: str, endpoint: str, partition: str | None) -> Path:
        return self.root / source / endpoint / (partition or UNPARTITIONED)

    def attempts(self, source: str, endpoint: str, partition: str | None) -> Iterator[Attempt]:
        folder = self.partition_folder(source, endpoint, partition)
        if folder.exists():
            for child in sorted(folder.iterdir()):
                if child.is_dir():
                    yield Attempt(child)

    def open_attempt(self, source: str, endpoint: str, partition: str | None,
                     run_id: str, *, resume: bool = True) -> Attempt:
        """The unfinished attempt of this partition to continue, or a new one.

        Only the newest attempt is ever continued: an unfinished one that a later attempt
        superseded (a run with `resume=False` went on to finish) holds stale pages.
        """
        if resume:
            attempts = list(self.attempts(source, endpoint, partition))
            if attempts and not attempts[-1].complete:
                return attempts[-1]
        # Attempt names sort by start time, so the newest attempt is always the last; the
        # microseconds keep two attempts of one second (and one run) apart and in order.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        folder = self.partition_folder(source, endpoint, partition) / f"{stamp}-{run_id[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        return Attempt(folder)

    def prune(self, source: str, endpoint: str, partition: str | None, keep: int = 2) -> int:
        """Delete all but the newest `keep` complete attempts; return how many went."""
        complete = [a for a in self.attempts(source, endpoint, partition) if a.complete]
        doomed = complete[:-keep] if keep else complete
        for attempt in doomed:
            shutil.rmtree(attempt.folder, ignore_errors=True)
        return len(doomed)
