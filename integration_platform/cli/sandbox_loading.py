"""The commands that run the sandbox vendors load with the sandbox package, on demand: without
it they stay listed, and running one says what is missing and how to install it."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

import click

from integration_platform.sandbox_dependency import SandboxNotInstalledError, sandbox_required

# Command name → (module, attribute) of the commands whose options need the sandbox package.
SANDBOX_COMMANDS = {
    "sandbox": ("integration_platform.cli.sandbox", "sandbox"),
    "up": ("integration_platform.cli.platform", "up"),
}


@contextmanager
def sandbox_for(command: str) -> Iterator[None]:
    """Imports of the sandbox inside this block fail, when it is not installed, as an error of
    `command` that says how to install it."""
    try:
        with sandbox_required(f"`integration-platform {command}`"):
            yield
    except SandboxNotInstalledError as exc:
        raise click.ClickException(str(exc)) from None


def load_sandbox_command(name: str) -> click.Command:
    """The command `name` of `SANDBOX_COMMANDS`, or a stand-in that fails saying why."""
    module_name, attribute = SANDBOX_COMMANDS[name]
    try:
        with sandbox_required(f"`integration-platform {name}`"):
            module = importlib.import_module(module_name)
    except SandboxNotInstalledError as exc:
        return _unavailable(name, str(exc))
    command: click.Command = getattr(module, attribute)
    return command


def _unavailable(name: str, message: str) -> click.Command:
    def fail() -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=fail,
        help=f"Unavailable: the sandbox package is not installed. {message}",
        short_help="Unavailable: the sandbox package is not installed (make install).",
        add_help_option=False,  # `--help` too says what is missing
        # Whatever follows (subcommands, options) gets the same error, not a usage error.
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
