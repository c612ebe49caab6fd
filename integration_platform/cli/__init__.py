"""The `integration-platform` command: the sandbox, the platform, the demo.

One module per command group. The commands that run the sandbox vendors (`sandbox ...`, `up`)
load on demand with the sandbox package (`sandbox_loading.py`), so every other command starts
without importing it, and works where it is not installed.
"""

from __future__ import annotations

import click

from integration_platform import environment
from integration_platform.cli import api, er, runs, sources, streams, webhooks, workers
from integration_platform.cli.errors import ScrubbedErrorsGroup
from integration_platform.cli.runs import _finish
from integration_platform.cli.sandbox_loading import SANDBOX_COMMANDS, load_sandbox_command
from integration_platform.logs import configure_logging

__all__ = ["_finish", "main"]


class PlatformCommands(ScrubbedErrorsGroup):
    """The top-level commands, the sandbox's among them, loaded when they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SANDBOX_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SANDBOX_COMMANDS:
            return load_sandbox_command(cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=PlatformCommands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Integration Platform: API sources into one DuckDB warehouse, modelled with dbt."""
    environment.load_env()
    configure_logging()


for command in (
    runs.materialize,
    runs.demo,
    sources.prepare,
    sources.validate,
    sources.extract,
    streams.streams,
    webhooks.webhooks,
    api.api,
    workers.workers,
    er.er,
):
    main.add_command(command)
