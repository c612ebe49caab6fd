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
from integration_platform.logs import ensure_logging


@definitions
def defs() -> Definitions:
    # JSON logs with secrets scrubbed in the process that loads the definitions (a code
    # server, a run), unless it set up its own; and quiet about Dagster's beta and preview
    # parameters, before the assets are built: every process that loads them warns.
    ensure_logging()
    silence_dagster_notices()
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
