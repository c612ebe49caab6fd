"""The headless demo: the whole job, as a user would run it, in one command.

The sandbox starts in this process on free ports; the main job (`runs/main_job.py`) pulls a
week of every source into raw, reloads the reference data, and builds staging, entity
resolution and the marts with dbt; then the demo prints what the marts hold, how well the
customers resolved against the sandbox's ground truth, and where the files are. Everything
lives in `data/demo/` (warehouse, landing zone, Dagster instance, logs), replaced at each run.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from integration_platform import environment
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.orchestration.instance import prepare_dagster_home
from integration_platform.runs.commands import run_main_job
from integration_platform.runs.main_job import MainJobResult
from integration_platform.sandbox_dependency import sandbox_required

if TYPE_CHECKING:
    from integration_platform_sandbox.world import SandboxSettings

# A week of the sandbox's year: every source has records on each of these days.
DEMO_START, DEMO_END = date(2025, 6, 1), date(2025, 6, 7)
MARTS = (
    "dim_customers",
    "customer_360",
    "fct_subscriptions",
    "fct_invoices",
    "fct_payments",
    "fct_tickets",
    "fct_product_usage_daily",
)
FACTS_WITH_CUSTOMERS = (
    "fct_subscriptions",
    "fct_invoices",
    "fct_payments",
    "fct_tickets",
    "fct_product_usage_daily",
)
ER_CHECK = ("intermediate/int_customer_clusters", "entity_resolution_quality")


def demo_folder() -> Path:
    return environment.data_dir() / "demo"


def run_demo(settings: SandboxSettings, echo: Callable[[str], None] = print) -> bool:
    """True when every run succeeded; prints progress, then the marts and the ER figures."""
    with sandbox_required("`integration-platform demo`"):
        from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
        from integration_platform_sandbox.server import Sandbox
        from integration_platform_sandbox.world import SandboxCredentials
    started = time.monotonic()
    environment.load_sandbox_env()
    folder = demo_folder()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["INTEGRATION_PLATFORM_DATA_DIR"] = str(folder)
    os.environ.pop("WAREHOUSE_PATH", None)
    os.environ["DAGSTER_HOME"] = str(folder / "dagster_home")
    prepare_dagster_home()
    credentials = SandboxCredentials.from_env()
    with Sandbox(settings, credentials, base_port=0) as sandbox:
        os.environ.update({VENDOR_URL_VARIABLES[v]: url for v, url in sandbox.urls.items()})
        echo(
            f"sandbox up: seed={settings.seed} customers={settings.customers} "
            f"({', '.join(sandbox.urls)})"
        )
        result = run_main_job(
            client_id=DEMO_CLIENT_ID,
            start=DEMO_START,
            end=DEMO_END,
            selection=None,
            full_refresh=False,
            echo=echo,
            log_name="demo",
        )
    _report(result, echo, time.monotonic() - started)
    return result.success


def _report(result: MainJobResult, echo: Callable[[str], None], seconds: float) -> None:
    assert result.progress is not None
    echo("")
    published = environment.warehouse_path().with_name("warehouse.published.duckdb")
    if not result.success or not published.exists():
        for line in result.progress.summary():
            echo(line)
        echo(
            f"\nFAILED after {seconds:.0f} s; the runs' output is in "
            f"{environment.data_dir() / 'logs' / 'demo.log'}"
        )
        return
    with duckdb.connect(str(published), read_only=True) as connection:
        echo(f"{'mart':<26}{'rows':>8}{'with a customer':>18}")
        for mart in MARTS:
            rows = connection.execute(f"SELECT count(*) FROM marts.{mart}").fetchall()[0][0]  # noqa: S608
            linked = ""
            if mart in FACTS_WITH_CUSTOMERS:
                count = connection.execute(
                    f"SELECT count(customer_id) FROM marts.{mart}"  # noqa: S608
                ).fetchall()[0][0]
                linked = f"{count / rows:>17.0%}" if rows else f"{'-':>17}"
            echo(f"{mart:<26}{rows:>8}{linked:>18}")
    quality = result.progress.check_results.get(ER_CHECK)
    if quality is not None:
        passed, figures = quality
        score = {name: float(figures.get(name, 0)) for name in ("precision", "recall", "f1")}
        echo(
            f"\nentity resolution against the sandbox's ground truth: precision "
            f"{score['precision']:.3f}, recall {score['recall']:.3f}, F1 {score['f1']:.3f} "
            f"({'passed' if passed else 'FAILED'})"
        )
    cli = environment.PROJECT_ROOT / ".venv-bi" / "duckdb-cli" / "bin" / "duckdb"
    echo(
        f"\ndone in {seconds:.0f} s. Query the marts from a BI tool with DuckDB 1.4 or later "
        "(README: Querying from BI tools), or from a terminal with the duckdb CLI "
        f"({'installed by' if cli.exists() else 'install it once with'} `make bi-clients`):\n"
        f"  {cli} -readonly {published}\n"
        f"the runs' output: {environment.data_dir() / 'logs' / 'demo.log'}\n"
        "to see these runs in the Dagster UI and these customers in the API, start the "
        f"platform on the demo's data:\n  {demo_platform_command()}"
    )


def demo_platform_command() -> str:
    """`make run` on the demo's warehouse and Dagster instance (paths relative to the
    current folder where they can be)."""
    return (
        f"INTEGRATION_PLATFORM_DATA_DIR={_shown(environment.data_dir())} "
        f"DAGSTER_HOME={Path(os.environ['DAGSTER_HOME']).resolve()} make run"
    )


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())
