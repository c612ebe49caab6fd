"""The sandbox vendors are a separate, development-only package (sandbox/ in the repository):
the few commands that start them import it here, and say how to install it when it is missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

SANDBOX_PACKAGE = "integration_platform_sandbox"
SANDBOX_DISTRIBUTION = "integration-platform-sandbox"


class SandboxNotInstalledError(RuntimeError):
    """A command that runs the sandbox vendors, in an environment without the sandbox."""

    def __init__(self, needed_by: str) -> None:
        super().__init__(
            f"{needed_by} runs the sandbox vendor APIs, and the sandbox package "
            f"({SANDBOX_DISTRIBUTION}, import name {SANDBOX_PACKAGE}) is not installed: it "
            "is a development package that the platform's wheel does not ship. From a clone "
            "of the repository, `make install` installs it (the `dev` extra), or "
            "`uv pip install -e ./sandbox` (or `pip install -e ./sandbox`) alone. Every other "
            "command runs without it, against the vendors the sources' variables name."
        )


@contextmanager
def sandbox_required(needed_by: str) -> Iterator[None]:
    """Imports of the sandbox inside this block raise `SandboxNotInstalledError` when it is not
    installed; any other missing module (a broken install) is left as it is."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != SANDBOX_PACKAGE:
            raise
        raise SandboxNotInstalledError(needed_by) from exc
