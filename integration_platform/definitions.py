"""The Dagster code location: every definition under integration_platform/defs/ (a `dg` project).

`defs` is a definitions function: importing this module loads nothing and changes nothing;
Dagster (`dg dev`, `dg launch`, every run) calls it. Specs load without resolving `${VAR}`
references, so definitions load without secrets; each source's API resource binds its variables
with EnvVar and resolves them when a run starts. Loading writes no file and parses no dbt
project: the manifest is built once by `integration-platform prepare` (make install, make run).
"""

from pathlib import Path

from dagster import Definitions, definitions, load_from_defs_folder

from integration_platform.dagster_warnings import silence_dagster_notices
from integration_platform.logs import configure_logging


@definitions
def defs() -> Definitions:
    # JSON logs, level from LOG_LEVEL, scrubbing the secrets of the environment as it is now, in
    # the process that loads the definitions (a code server, a run, a command); and quiet about
    # Dagster's beta and preview parameters, before the assets are built: every process warns.
    configure_logging()
    silence_dagster_notices()
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
