"""The landing zone: each page exactly as received, gzipped, with a manifest that is the checkpoint.

Layout: `<root>/<source>/<endpoint>/<partition>/<attempt>/page-000001.json.gz` plus
`manifest.jsonl` (one line per page, appended only after the page file is in place) and
`COMPLETE` once the extraction finished. A run that dies mid-extraction leaves an attempt
without `COMPLETE`; the next run of that partition continues it after its last manifest line
whose page is intact.

Nothing is fsynced page by page (it cost a third of a million-record extraction's wall time):
a killed process loses nothing the kernel already has, and after a machine crash the resume
checks every landed page against the sha256 its manifest line recorded and continues from
the first one that did not survive.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from integration_platform.extraction.windows import UNPARTITIONED
from integration_platform.landing.provenance import Provenance, Pull
from integration_platform.paths import path_under

MANIFEST = "manifest.jsonl"
COMPLETE = "COMPLETE"


class PageEntry(BaseModel):
    """One manifest line: a page that landed whole, and what produced it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    page: int
    file: str
    records: int
    bytes: int
    sha256: str
    url: str
    fetched_at: str
    run_id: str
    provenance: Provenance

    @model_validator(mode="before")
    @classmethod
    def _before_provenance(cls, line: Any) -> Any:
        """Lines written before provenance was recorded are pulled pages: an attempt left
        unfinished by the previous release resumes from them."""
        if isinstance(line, dict) and "provenance" not in line and "request" in line:
            line = dict(line)
            line["provenance"] = {
                "kind": "pull",
                "request": line.pop("request"),
                "next_request": line.pop("next_request", None),
                "graphql_errors": line.pop("graphql_errors", []),
            }
        return line


class Attempt:
    """One extraction of one partition, possibly continued across several runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._manifest: BinaryIO | None = None  # kept open while pages land

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST

    @property
    def complete(self) -> bool:
        return (self.folder / COMPLETE).exists()

    def entries(self) -> list[PageEntry]:
        """Every page whose manifest line was written whole (a torn last line is ignored)."""
        return [entry for entry, _ in self._lines(0)]

    def entries_after(self, offset: int) -> tuple[list[PageEntry], int]:
        """The pages whose whole manifest lines start at byte `offset` or later, and the offset
        after them (to follow a manifest while it grows without reading it all again)."""
        lines = self._lines(offset)
        return [entry for entry, _ in lines], offset + sum(size for _, size in lines)

    def _lines(self, offset: int) -> list[tuple[PageEntry, int]]:
        """(entry, bytes of its line) for each whole manifest line from byte `offset` on."""
        if not self.manifest_path.exists():
            return []
        with self.manifest_path.open("rb") as manifest:
            manifest.seek(offset)
            tail = manifest.read()
        lines = []
        for line in tail.split(b"\n")[:-1]:  # each ends in \n
            try:
                lines.append((PageEntry.model_validate_json(line), len(line) + 1))
            except ValidationError:
                break  # the process died while appending this line: the page did not land
        return lines

    def resume_point(self) -> tuple[int, dict[str, Any] | None, bool]:
        """(pages already landed, the pull's checkpoint to continue from, whether nothing is
        left to fetch). The checkpoint is the last page's `Pull.next_request`.

        The manifest is cut after its last line whose page is intact: a torn last line (the
        process died appending it), or lines whose pages a machine crash lost or truncated.
        The pages landed next must follow those lines, or they would be hidden from readers.
        """
        entries: list[PageEntry] = []
        size = 0
        for entry, line_size in self._lines(0):
            if not self._intact(entry):
                break
            entries.append(entry)
            size += line_size
        if self.manifest_path.exists() and self.manifest_path.stat().st_size > size:
            with self.manifest_path.open("r+b") as manifest:
                manifest.truncate(size)
        if not entries:
            return 0, None, False
        last = entries[-1].provenance
        following = last.next_request if isinstance(last, Pull) else None
        return len(entries), following, following is None

    def _intact(self, entry: PageEntry) -> bool:
        try:
            content = gzip.decompress((self.folder / entry.file).read_bytes())
        except (OSError, EOFError, gzip.BadGzipFile):
            return False
        return hashlib.sha256(content).hexdigest() == entry.sha256

    def write_page(
        self,
        number: int,
        content: bytes,
        *,
        records: int,
        url: str,
        fetched_at: datetime,
        run_id: str,
        provenance: Provenance,
    ) -> PageEntry:
        """Land one page: its file first, then its manifest line (the page's commit).

        `content` is what `provenance` says: a response body as received (`Pull`), or the
        JSON list of pushed records.

        A file without its line (the process died in between) is overwritten when the page is
        fetched again; the manifest stays open between pages, as opening files is what a page
        costs most on some filesystems (0.45 ms each here, more than compressing it).
        """
        name = f"page-{number:06d}.json.gz"
        # Level 1: the landing zone is written once and read once; speed beats ratio here.
        with open(os.path.join(self.folder, name), "wb") as page:
            page.write(gzip.compress(content, compresslevel=1, mtime=0))
        entry = PageEntry(
            page=number,
            file=name,
            records=records,
            bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            url=url,
            fetched_at=fetched_at.astimezone(UTC).isoformat(),
            run_id=run_id,
            provenance=provenance,
        )
        if self._manifest is None:
            self._manifest = self.manifest_path.open("ab")
        self._manifest.write(entry.model_dump_json().encode() + b"\n")
        self._manifest.flush()  # readers (a Stager) follow the manifest as it grows
        return entry

    def close(self) -> None:
        """Stop landing pages (the manifest is closed; writing a page reopens it)."""
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None

    def mark_complete(self) -> None:
        self.close()
        (self.folder / COMPLETE).write_text(datetime.now(UTC).isoformat())


class LandingZone:
    def __init__(self, root: Path) -> None:
        self.root = root

    def partition_folder(self, source: str, endpoint: str, partition: str | None) -> Path:
        """`<root>/<source>/<endpoint>/<partition>`; UnsafePathError if a name would leave root."""
        return path_under(
            self.root, source, endpoint, partition or UNPARTITIONED, what="landing zone name"
        )

    def attempts(self, source: str, endpoint: str, partition: str | None) -> Iterator[Attempt]:
        folder = self.partition_folder(source, endpoint, partition)
        if folder.exists():
            for child in sorted(folder.iterdir()):
                if child.is_dir():
                    yield Attempt(child)

    def open_attempt(
        self, source: str, endpoint: str, partition: str | None, run_id: str, *, resume: bool = True
    ) -> Attempt:
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
