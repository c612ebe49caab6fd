"""How command errors read: scrubbed of secrets, one line each, quoting what a user typed
cut short."""

from __future__ import annotations

from typing import Any

import click

from integration_platform.environment import SettingError
from integration_platform.logs import get_logger, scrub_text


class ScrubbedErrorsGroup(click.Group):
    """Every command error passes the secret scrubber before it is printed.

    A `SettingError` (a setting to change) is printed as it is. An error a command did not
    expect is logged with its traceback as one JSON line (scrubbed
    like every log line) and printed in one line, instead of a raw traceback on stderr.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.UsageError as exc:
            raise click.UsageError(scrub_text(exc.format_message()), exc.ctx) from None
        except click.ClickException as exc:  # every other kind exits with 1, as this does
            raise click.ClickException(scrub_text(exc.format_message())) from None
        except SettingError as exc:  # the user's to fix, and the message says how: no traceback
            raise click.ClickException(scrub_text(str(exc))) from None
        except Exception as exc:
            get_logger("integration_platform.cli").error(
                "command_failed", command=ctx.invoked_subcommand, exc_info=True
            )
            raise click.ClickException(
                scrub_text(
                    f"{type(exc).__name__}: {exc} (traceback in the command_failed log line)"
                )
            ) from None


def shown(value: str, limit: int = 60) -> str:
    """A value a user typed, quoted and cut short: an error must not echo a page of it."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
