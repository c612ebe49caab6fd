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

The root is a folder (the default; a shared folder serves several workers) or, with
`LANDING_URL=s3://bucket/prefix`, S3-compatible object storage through fsspec (s3fs). Objects
are written whole, so a page is visible whole or not at all there too; but an object cannot
be appended to, so there the manifest is a prefix `manifest/` holding one small object per
line, `manifest/000001.json`, written after its page (the page's commit, as the appended line
is on a folder). Its lines are read in page order and only up to the first gap; cutting the
manifest at a resume deletes the line objects past the cut. `COMPLETE` is an object too. The
cross-process lease and DuckDB's spill files need a real filesystem: on object storage they
go in a local scratch folder (the landing resource's `state_root`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
from botocore.exceptions import BotoCoreError
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from upath import UPath

from integration_platform.environment import SettingError
from integration_platform.extraction.windows import UNPARTITIONED
from integration_platform.landing.provenance import Provenance, Pull
from integration_platform.paths import check_component, path_under

MANIFEST = "manifest.jsonl"
MANIFEST_LINES = "manifest"  # on object storage: one object per manifest line
COMPLETE = "COMPLETE"
LANDING_URL_VARIABLE = "LANDING_URL"
WEBHOOK_ATTEMPT_SUFFIX = "-webhooks"

# A folder (local or shared) or an object-storage location (`s3://bucket/prefix`).
Folder = Path | UPath


class LandingStorageError(SettingError):
    """The landing zone's object storage refused or could not be reached."""


def landing_root(url: str | Path) -> Folder:
    """The landing zone's root for `LANDING_URL`'s value: a folder for a path (or file://),
    object storage for any other fsspec URL (`s3://bucket/prefix`). The endpoint and the
    credentials come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...; other
    s3fs options as FSSPEC_S3_<OPTION>), never from the URL or a setting that is logged."""
    text = str(url)
    if "://" not in text or text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    # No listings cache: other workers add attempts and pages all the time.
    return UPath(text, use_listings_cache=False)


def is_object_storage(folder: Folder) -> bool:
    return not isinstance(folder, Path)


@contextlib.contextmanager
def storage_errors(folder: Folder, doing: str, *, writing: bool = False) -> Iterator[None]:
    """Turn what object storage refuses (or an endpoint that does not answer) into a
    LandingStorageError naming the setting and what to check; folders raise as they always did.
    A missing object is an answer when reading; when `writing`, it means the bucket is gone."""
    try:
        yield
    except FileNotFoundError as exc:
        if writing and is_object_storage(folder):
            raise LandingStorageError(_storage_message(folder, doing, exc)) from exc
        raise
    except (OSError, BotoCoreError) as exc:
        if not is_object_storage(folder):
            raise
        raise LandingStorageError(_storage_message(folder, doing, exc)) from exc


def _storage_message(folder: Folder, doing: str, exc: BaseException) -> str:
    return (
        f"the landing zone {folder} ({LANDING_URL_VARIABLE}) could not {doing}: "
        f"{type(exc).__name__}: {exc}. Check that the bucket exists and that the endpoint "
        "(AWS_ENDPOINT_URL) and credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or "
        "AWS_PROFILE) in this process's environment reach it, or unset "
        f"{LANDING_URL_VARIABLE} to land pages in the local folder. Pages already landed are "
        "kept: the next run resumes after the last one whose manifest line was written."
    )


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
    """One extraction of one partition, possibly continued across several runs.

    In a folder, or at an object-storage location (`ObjectAttempt`); the same methods and
    checkpoint semantics on both. `temp_directory` is where DuckDB may spill while staging.
    """

    def __init__(self, folder: Path) -> None:
        self.folder: Folder = folder
        self._path = folder
        self._manifest: BinaryIO | None = None  # kept open while pages land

    @property
    def manifest_path(self) -> Path:
        return self._path / MANIFEST

    @property
    def complete(self) -> bool:
        return (self.folder / COMPLETE).exists()

    @property
    def temp_directory(self) -> Path:
        return self._path / ".tmp"

    def entries(self) -> list[PageEntry]:
        """Every page whose manifest line was written whole (a torn last line is ignored)."""
        return [entry for entry, _ in self._lines(0)]

    def entries_after(self, offset: int) -> tuple[list[PageEntry], int]:
        """The pages whose whole manifest lines start at `offset` (a byte offset in a folder,
        a line number on object storage: pass back what the last call returned) or later, and
        the offset after them (to follow a manifest while it grows without reading it all)."""
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
        self._cut_manifest(size)
        if not entries:
            return 0, None, False
        last = entries[-1].provenance
        following = last.next_request if isinstance(last, Pull) else None
        return len(entries), following, following is None

    def _cut_manifest(self, size: int) -> None:
        """Drop the manifest past `size` (what `_lines` counted for the lines kept)."""
        if self.manifest_path.exists() and self.manifest_path.stat().st_size > size:
            with self.manifest_path.open("r+b") as manifest:
                manifest.truncate(size)

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
        self._write_page_file(name, gzip.compress(content, compresslevel=1, mtime=0))
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
        self._append_line(entry)
        return entry

    def _write_page_file(self, name: str, data: bytes) -> None:
        with open(os.path.join(self._path, name), "wb") as page:
            page.write(data)

    def _append_line(self, entry: PageEntry) -> None:
        if self._manifest is None:
            self._manifest = self.manifest_path.open("ab")
        self._manifest.write(entry.model_dump_json().encode() + b"\n")
        self._manifest.flush()  # readers (a Stager) follow the manifest as it grows

    def close(self) -> None:
        """Stop landing pages (the manifest is closed; writing a page reopens it)."""
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None

    def mark_complete(self) -> None:
        self.close()
        (self.folder / COMPLETE).write_text(datetime.now(UTC).isoformat())

    def register_storage(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Let `connection` read this attempt's pages by their `folder / file` names (DuckDB
        reads folders itself; object storage through fsspec)."""

    def remove(self) -> None:
        shutil.rmtree(self._path, ignore_errors=True)


class ObjectAttempt(Attempt):
    """An attempt on object storage: objects are written whole, and the manifest is one object
    per line under `manifest/` (objects cannot be appended to); see the module's docstring."""

    def __init__(self, folder: UPath, scratch: Path) -> None:
        super().__init__(scratch)  # the local part: DuckDB's spill folder
        self.folder = folder
        self._object = folder
        self._fs = folder.fs

    @property
    def manifest_path(self) -> Path:
        raise TypeError("an attempt on object storage has no manifest file: use entries()")

    @property
    def complete(self) -> bool:
        with storage_errors(self._object, "be read"):
            return bool(self._fs.exists((self._object / COMPLETE).path))

    @property
    def temp_directory(self) -> Path:
        return self._path / ".tmp"

    def _line_names(self) -> list[tuple[int, str]]:
        """(page, object path) of each manifest line object, in page order."""
        prefix = (self._object / MANIFEST_LINES).path
        with storage_errors(self._object, "be listed"):
            try:
                names = self._fs.ls(prefix, detail=False, refresh=True)
            except FileNotFoundError:
                return []
        numbered = []
        for name in names:
            stem = str(name).rsplit("/", 1)[-1].removesuffix(".json")
            if stem.isdigit():
                numbered.append((int(stem), str(name)))
        return sorted(numbered)

    def _lines(self, offset: int) -> list[tuple[PageEntry, int]]:
        """(entry, 1) for each manifest line object from the `offset`-th on, up to a gap."""
        names = self._line_names()
        # Lines are written one after the other from page 1: one missing means a cut that
        # did not finish deleting, and what follows it is stale.
        consecutive = []
        for position, (page, name) in enumerate(names, start=1):
            if page != position:
                break
            consecutive.append(name)
        wanted = consecutive[offset:]
        if not wanted:
            return []
        with storage_errors(self._object, "be read"):
            contents = self._fs.cat(wanted)
        lines = []
        for name in wanted:
            try:
                lines.append((PageEntry.model_validate_json(contents[name]), 1))
            except ValidationError:
                break
        return lines

    def _cut_manifest(self, size: int) -> None:
        """Delete the line objects past the first `size` (last first, so a cut that dies
        midway leaves a gap that readers stop at, never stale lines after new ones)."""
        doomed = [name for page, name in self._line_names() if page > size]
        with storage_errors(self._object, "delete stale manifest lines", writing=True):
            for name in reversed(doomed):
                self._fs.rm_file(name)

    def _intact(self, entry: PageEntry) -> bool:
        try:
            with storage_errors(self._object, "be read"):
                data = self._fs.cat_file((self._object / entry.file).path)
            content = gzip.decompress(data)
        except (FileNotFoundError, EOFError, gzip.BadGzipFile):
            return False
        return hashlib.sha256(content).hexdigest() == entry.sha256

    def _write_page_file(self, name: str, data: bytes) -> None:
        with storage_errors(self._object, "store a page", writing=True):
            self._fs.pipe_file((self._object / name).path, data)

    def _append_line(self, entry: PageEntry) -> None:
        line = (self._object / MANIFEST_LINES / f"{entry.page:06d}.json").path
        with storage_errors(self._object, "store a manifest line", writing=True):
            self._fs.pipe_file(line, entry.model_dump_json().encode() + b"\n")

    def close(self) -> None:
        pass

    def mark_complete(self) -> None:
        with storage_errors(self._object, "store the COMPLETE marker", writing=True):
            self._fs.pipe_file(
                (self._object / COMPLETE).path, datetime.now(UTC).isoformat().encode()
            )

    def register_storage(self, connection: duckdb.DuckDBPyConnection) -> None:
        protocols = (
            self._fs.protocol if isinstance(self._fs.protocol, tuple) else (self._fs.protocol,)
        )
        if not set(protocols) & set(connection.list_filesystems()):
            connection.register_filesystem(self._fs)

    def remove(self) -> None:
        with (
            storage_errors(self._object, "delete an attempt"),
            contextlib.suppress(FileNotFoundError),
        ):
            self._fs.rm(self._object.path, recursive=True)
        shutil.rmtree(self._path, ignore_errors=True)


class LandingZone:
    """Attempts per `<source>/<endpoint>/<partition>` under `root`: a folder, or object storage
    (with `scratch`, a local folder for leases and DuckDB's spill files; a temporary one when
    none is given)."""

    def __init__(self, root: Folder | str, *, scratch: Path | None = None) -> None:
        self.root: Folder = landing_root(root) if isinstance(root, str) else root
        self.scratch = scratch

    @property
    def object_storage(self) -> bool:
        return is_object_storage(self.root)

    def partition_folder(self, source: str, endpoint: str, partition: str | None) -> Folder:
        """`<root>/<source>/<endpoint>/<partition>`; UnsafePathError if a name would leave root."""
        return folder_under(
            self.root, source, endpoint, partition or UNPARTITIONED, what="landing zone name"
        )

    def lease_folder(self, source: str, endpoint: str, partition: str | None) -> Path:
        """Where the partition's cross-process lease lives: its folder, or on object storage
        the same names under the scratch folder (share it between hosts for a lease that
        spans them)."""
        if isinstance(self.root, Path):
            return path_under(
                self.root, source, endpoint, partition or UNPARTITIONED, what="landing zone name"
            )
        return path_under(
            self._scratch(),
            "leases",
            source,
            endpoint,
            partition or UNPARTITIONED,
            what="landing zone name",
        )

    def _scratch(self) -> Path:
        if self.scratch is None:
            self.scratch = Path(tempfile.mkdtemp(prefix="landing-scratch-"))
        return self.scratch

    def attempt(self, folder: Folder) -> Attempt:
        """The attempt at `folder` (one of this zone's)."""
        if isinstance(folder, Path):
            return Attempt(folder)
        assert isinstance(self.root, UPath)
        relative = folder.path.removeprefix(self.root.path).strip("/")
        return ObjectAttempt(folder, self._scratch().joinpath("attempts", *relative.split("/")))

    def attempts(self, source: str, endpoint: str, partition: str | None) -> Iterator[Attempt]:
        folder = self.partition_folder(source, endpoint, partition)
        if isinstance(folder, Path):
            if folder.exists():
                for child in sorted(folder.iterdir()):
                    if child.is_dir():
                        yield Attempt(child)
            return
        with storage_errors(folder, "be listed"):
            try:
                children = folder.fs.ls(folder.path, detail=True, refresh=True)
            except FileNotFoundError:
                return
        names = sorted(
            str(child["name"]).rstrip("/").rsplit("/", 1)[-1]
            for child in children
            if child["type"] == "directory"
        )
        for name in names:
            yield self.attempt(folder / name)

    def partitions(self, source: str, endpoint: str) -> list[str]:
        """The partitions that have attempts, by name."""
        folder = folder_under(self.root, source, endpoint, what="landing zone name")
        if isinstance(folder, Path):
            return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        with storage_errors(folder, "be listed"):
            try:
                children = folder.fs.ls(folder.path, detail=True, refresh=True)
            except FileNotFoundError:
                return []
        return sorted(
            str(c["name"]).rstrip("/").rsplit("/", 1)[-1]
            for c in children
            if c["type"] == "directory"
        )

    def open_attempt(
        self, source: str, endpoint: str, partition: str | None, run_id: str, *, resume: bool = True
    ) -> Attempt:
        """The unfinished attempt of this partition to continue, or a new one.

        Only the newest attempt is ever continued: an unfinished one that a later attempt
        superseded (a run with `resume=False` went on to finish) holds stale pages. Webhook
        attempts are never continued: one still being moved in (object storage copies it
        object by object) is not an unfinished pull.
        """
        if resume:
            attempts = [
                a
                for a in self.attempts(source, endpoint, partition)
                if not (a.folder.name.endswith(WEBHOOK_ATTEMPT_SUFFIX) and not a.complete)
            ]
            if attempts and not attempts[-1].complete:
                return attempts[-1]
        # Attempt names sort by start time, so the newest attempt is always the last; the
        # microseconds keep two attempts of one second (and one run) apart and in order.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        folder = self.partition_folder(source, endpoint, partition) / f"{stamp}-{run_id[:8]}"
        if isinstance(folder, Path):
            folder.mkdir(parents=True, exist_ok=True)
        return self.attempt(folder)

    def staging_attempt(self, name: str) -> Attempt:
        """An attempt built aside (under `.incoming/`), for `move_in` once it is complete."""
        folder = folder_under(self.root, ".incoming", name, what="staging name")
        if isinstance(folder, Path):
            folder.mkdir(parents=True, exist_ok=True)
        return self.attempt(folder)

    def move_in(
        self, staged: Attempt, source: str, endpoint: str, partition: str | None, name: str
    ) -> Attempt:
        """Move a complete staged attempt into its partition as `name`: a rename in a folder;
        on object storage a copy, `COMPLETE` last, then the staged objects go."""
        target = self.partition_folder(source, endpoint, partition)
        check_component(name, "attempt name")
        if isinstance(target, Path):
            assert isinstance(staged.folder, Path)
            target.mkdir(parents=True, exist_ok=True)
            os.replace(staged.folder, target / name)
            return Attempt(target / name)
        assert isinstance(staged.folder, UPath)
        moved = target / name
        fs, source_path = staged.folder.fs, staged.folder.path
        with storage_errors(self.root, "store a webhook batch", writing=True):
            names = [str(n) for n in fs.find(source_path)]
            complete = [n for n in names if n.endswith("/" + COMPLETE)]
            for name in [n for n in names if n not in complete] + complete:
                fs.copy(name, moved.path + name.removeprefix(source_path))
        staged.remove()
        return self.attempt(moved)

    def prune(self, source: str, endpoint: str, partition: str | None, keep: int = 2) -> int:
        """Delete all but the newest `keep` complete attempts; return how many went."""
        complete = [a for a in self.attempts(source, endpoint, partition) if a.complete]
        doomed = complete[:-keep] if keep else complete
        for attempt in doomed:
            attempt.remove()
        return len(doomed)


def folder_under(root: Folder, *names: str, what: str = "name") -> Folder:
    """`root/names[0]/...`, each name one component (UnsafePathError otherwise)."""
    if isinstance(root, Path):
        return path_under(root, *names, what=what)
    return root.joinpath(*(check_component(name, what) for name in names))
