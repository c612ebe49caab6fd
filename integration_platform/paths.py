"""Paths built from names that specs, partitions or users supply, refused unless under their root.

Specs validate their names first (with a clear error at load time); this is the second line:
whatever reaches a path builder is checked again, so a name that slipped past validation (a
spec built in code, a partition key from a command line) cannot leave the data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

# Most filesystems cap one path component at 255 bytes.
MAX_COMPONENT_BYTES = 255


class UnsafePathError(ValueError):
    """A name that cannot be a single folder or file name under its root."""


def check_component(name: str, what: str = "name") -> str:
    """`name` if it is one ordinary path component; UnsafePathError saying why not otherwise."""
    problem = None
    if not name or name in (".", ".."):
        problem = "is empty, '.' or '..'"
    elif "/" in name or "\\" in name or "\0" in name or (os.altsep and os.altsep in name):
        problem = "contains a path separator or NUL"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
        problem = f"is longer than {MAX_COMPONENT_BYTES} bytes"
    if problem:
        shown = name if len(name) <= 60 else name[:60] + "..."
        raise UnsafePathError(f"{what} {shown!r} {problem}: it cannot name a file or folder")
    return name


def path_under(root: Path, *names: str, what: str = "name") -> Path:
    """`root/names[0]/names[1]/...`, each name one component, the result lexically inside root."""
    path = root.joinpath(*(check_component(name, what) for name in names))
    # Lexical check (no symlink resolution: a data folder may itself be a symlink elsewhere).
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.abspath(path))
    if os.path.commonpath([base, full]) != base:
        raise UnsafePathError(f"{what} {'/'.join(names)!r} leads outside {root}")
    return path
