"""The Dagster notices this project silences, in one place: each is about Dagster's own API or
set-up, and nobody running the platform can act on it."""

from __future__ import annotations

import re
import warnings

# Log lines of the Dagster processes that `integration-platform up` does not repeat on the
# console (they stay in data/logs/dagster.log). `dg dev` runs in the repository root so
# relative SOURCES_PATH entries keep working; there it finds the repository's dagster.yaml,
# which the launcher has copied into DAGSTER_HOME already, and says it will not use it.
# And on a fresh instance, the daemon's first look at run events for the run-failure sensor
# says it starts from now, once per event type.
CONSOLE_QUIET = (
    re.compile(r"Found a dagster instance configuration value \(dagster\.yaml\) in the current"),
    re.compile(r"No cursor for event type DagsterEventType\.\w+, ignoring older events"),
)


def silence_dagster_notices() -> None:
    """Ignore Dagster's notices about its beta and preview parameters in this process.

    Our definitions use some on purpose (backfill policies, sensor owners); Dagster warns once
    per asset and per process that loads the definitions, which says nothing to a user.
    """
    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)
