"""Every shell block of the README runs as written (ports moved to free ones), in a working
folder of its own, against a platform this module starts once (`integration-platform up`,
what `make run` runs) where the block needs one; a new block without a test fails the guard.

To cover a new block: write a test that runs it (`run_shell(platform, block.text, ...)`) and
asserts what a user would see, decorated `@covers("<the block's first command>")`."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import duckdb
import httpx
import pytest

from integration_platform.environment import PROJECT_ROOT
from tests.e2e.readme_blocks import fenced_blocks
from tests.e2e.readme_shell import (
    COVERED,
    Ran,
    Workdir,
    block_id,
    commands,
    covers,
    json_documents,
    readme_block,
    run_shell,
    shell_blocks,
    wait_for,
)
from tests.e2e.test_platform_commands import free_port_block

# Per-block limits for a loaded 2-core machine (several test suites at once); alone, the
# slowest block (three days of the main job, dbt included) takes about a minute.
QUICK = 120.0
MAIN_JOB = 900.0
PLATFORM_START = 300.0
# What the README tells the reader to do before the curl examples of the sandbox's vendors.
DEMO_CREDENTIALS = "set -a; . config/sandbox.env; set +a\n"


# --- the guards ------------------------------------------------------------------------------


def test_every_readme_shell_block_has_a_test_when_the_suite_runs() -> None:
    blocks = {block_id(block): block for block in shell_blocks()}
    assert len(blocks) == len(shell_blocks()), "two shell blocks start with the same command"
    assert len(blocks) >= 10, "the README's shell blocks were not found (renamed fences?)"
    untested = [
        f"README.md line {block.line}: {first!r}"
        for first, block in blocks.items()
        if first not in COVERED
    ]
    assert not untested, (
        "shell blocks without a test:\n  "
        + "\n  ".join(untested)
        + "\nAdd a test to tests/e2e/test_readme_shell.py that runs the block and asserts what "
        "a user would see, decorated @covers('<its first command>'); a block that only shows "
        "output is ```text, not a shell block."
    )
    gone = sorted(set(COVERED) - set(blocks))
    assert not gone, f"tests cover shell blocks the README no longer has: {gone}"


def test_every_readme_fence_names_its_language_when_read() -> None:
    """A fence without a language could be a command nobody tests: shell blocks are ```sh,
    output samples and layouts ```text."""
    bare = [f"README.md line {block.line}" for block in fenced_blocks() if not block.language]
    assert not bare, f"fences without a language (```sh or ```text): {bare}"


@pytest.mark.parametrize(
    ("target", "runs"),
    [
        # `make install`, `make run`, `make test` and `make demo` are not run from here (they
        # install, serve until stopped, or run this very suite): `make -n` shows that each
        # exists and runs what the README says it does. The commands they run are run below
        # (`up` as the platform of this module) or by tests/e2e/test_platform_commands.py
        # (`make demo` itself).
        ("install", ["integration-platform prepare"]),
        ("run", ["integration-platform up"]),
        ("test", ["ruff check .", "ruff format --check .", "mypy integration_platform", "pytest"]),
        ("demo", ["integration-platform demo"]),
        ("sandbox", ["integration-platform sandbox up"]),
        ("bi-clients", ["duckdb==", "duckdb-cli=="]),
    ],
)
def test_make_target_runs_what_the_readme_says_when_dry_run(target: str, runs: list[str]) -> None:
    # With a fresh venv's timestamps, so that `make -n` lists the prerequisites' commands too.
    result = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", target],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=QUICK,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in runs:
        assert command in result.stdout, f"`make {target}` runs no {command!r}:\n{result.stdout}"


def test_every_make_target_the_readme_names_exists_when_dry_run() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    targets = sorted(set(re.findall(r"`make ([a-z][\w-]*)", readme)))
    assert {"run", "test", "demo", "install", "sandbox", "bi-clients"} <= set(targets), targets
    for target in targets:
        result = subprocess.run(
            ["make", "-n", "--no-print-directory", target],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=QUICK,
            check=False,
        )
        assert result.returncode == 0, f"README names `make {target}`: {result.stderr}"


# --- the working folder and the platform ----------------------------------------------------


@pytest.fixture(scope="module")
def workdir(shared_platform: Workdir) -> Workdir:
    """The folder of the session's platform (tests/e2e/conftest.py): a stand-in for the
    repository's root."""
    return shared_platform


@pytest.fixture(scope="module")
def platform(shared_platform: Workdir) -> Workdir:
    """`make run`'s command, once for the session (tests/e2e/conftest.py), on the test's
    ports: the README's blocks that need a platform run against it."""
    return shared_platform


# --- Quickstart -------------------------------------------------------------------------------

CLI_BLOCK = ".venv/bin/integration-platform --help"
CLI_COMMANDS = [
    ".venv/bin/integration-platform --help",
    ".venv/bin/integration-platform sandbox up --customers 5000 --chaos light",
    ".venv/bin/integration-platform validate                       # check every spec in sources/",
    ".venv/bin/integration-platform extract crm.contacts --partition 2025-03-01",
    ".venv/bin/integration-platform demo",
]


def _cli_command(word: str) -> str:
    block = readme_block(CLI_BLOCK)
    assert commands(block) == CLI_COMMANDS, (
        f"README.md line {block.line} changed: run each of its commands in a test below"
    )
    [command] = [c for c in CLI_COMMANDS if c.split()[1] == word or c.endswith(word)]
    return command


@covers(CLI_BLOCK)
def test_cli_help_and_validate_succeed_when_run_as_the_readme_shows(workdir: Workdir) -> None:
    block = readme_block(CLI_BLOCK)
    helped = run_shell(workdir, _cli_command("--help"), QUICK)
    assert helped.returncode == 0, helped.report(block)
    assert "Usage: integration-platform" in helped.output, helped.report(block)
    validated = run_shell(workdir, _cli_command("validate"), QUICK)
    assert validated.returncode == 0, validated.report(block)
    for spec in sorted((PROJECT_ROOT / "sources").glob("*.yaml")):
        assert f"/sources/{spec.name}: source " in validated.output, validated.report(block)


@covers(CLI_BLOCK)
def test_cli_sandbox_up_serves_until_ctrl_c_when_run_as_the_readme_shows(
    workdir: Workdir,
) -> None:
    """A long-running command: it runs until its vendors answer, then gets Ctrl-C. It runs
    beside the module's platform, so on another block of free ports."""
    block = readme_block(CLI_BLOCK)
    base = free_port_block(4)
    command = _cli_command("sandbox") + f" --base-port {base}"
    log = workdir.path / "sandbox-up.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=workdir.path,
            env=workdir.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def answers() -> bool:
        try:
            return all(
                httpx.get(f"http://127.0.0.1:{base + i}/_sandbox/health", timeout=5).status_code
                == 200
                for i in range(4)
            )
        except httpx.TransportError:
            return False

    def exited() -> str:
        return "" if process.poll() is None else f"exited: {log.read_text()[-3000:]}"

    try:
        wait_for(answers, QUICK, command, exited)
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=60)
    ran = Ran(command, returncode, log.read_text())
    assert returncode == 0, ran.report(block)
    assert "sandbox: seed=42 customers=5000 chaos=light" in ran.output, ran.report(block)


@covers(CLI_BLOCK)
def test_cli_extract_writes_a_day_of_contacts_when_the_platform_runs(platform: Workdir) -> None:
    block = readme_block(CLI_BLOCK)
    ran = run_shell(platform, _cli_command("extract"), QUICK)
    assert ran.returncode == 0, ran.report(block)
    summary = json_documents(ran.output)[-1]  # after the JSON log lines on stderr
    assert summary["records"] > 0, ran.report(block)
    assert Path(summary["out"]).is_dir()


@covers(CLI_BLOCK)
def test_cli_demo_is_the_command_make_demo_runs_and_a_test_runs() -> None:
    """`integration-platform demo` takes over a minute: `make demo`, which runs exactly it,
    is run once for the session by tests/e2e/demo_run.py, and its figures are checked against
    the README by tests/e2e/test_platform_commands.py, rather than twice in the suite."""
    assert _cli_command("demo").endswith("integration-platform demo")
    e2e = PROJECT_ROOT / "tests" / "e2e"
    suite = (e2e / "test_platform_commands.py").read_text()
    assert "def test_demo_prints_the_seeded_figures_and_no_warning_when_run_headless" in suite
    assert "demo_run: DemoRun" in suite
    assert '["make", "--no-print-directory", "demo"' in (e2e / "demo_run.py").read_text()


MAIN_JOB_BLOCK = (
    ".venv/bin/integration-platform materialize --partition-range 2025-03-01...2025-03-03"
)


@pytest.fixture(scope="module")
def main_job(platform: Workdir) -> Ran:
    """The main job's block, step by step, once: other blocks read what it landed."""
    return run_shell(platform, readme_block(MAIN_JOB_BLOCK).text, MAIN_JOB)


@covers(MAIN_JOB_BLOCK)
@pytest.mark.slow
@pytest.mark.timeout(MAIN_JOB + PLATFORM_START + 60)
def test_main_job_block_lands_raw_days_and_builds_marts_when_the_platform_runs(
    main_job: Ran,
) -> None:
    block = readme_block(MAIN_JOB_BLOCK)
    assert main_job.returncode == 0, main_job.report(block)
    for landed in (
        "✓ raw/crm/contacts  demo|2025-03-03",  # the days, everything
        "✓ raw/billing/invoices  demo|2025-03-01",  # one day of one source
        "✓ marts/customer_360",  # dbt
    ):
        assert landed in main_job.output, main_job.report(block)


# --- The raw layer ----------------------------------------------------------------------------

BACKFILL_BLOCK = "export DAGSTER_HOME=$PWD/.dagster_home; set -a; . config/sandbox.env; set +a"
DG_LAUNCH_BLOCK = "set -a; . config/sandbox.env; set +a; export DAGSTER_HOME=$PWD/.dagster_home"


@covers(BACKFILL_BLOCK)
@pytest.mark.slow
@pytest.mark.timeout(MAIN_JOB + PLATFORM_START + 60)
def test_backfill_block_lands_days_of_raw_when_the_platform_runs(platform: Workdir) -> None:
    block = readme_block(BACKFILL_BLOCK)
    ran = run_shell(platform, block.text, MAIN_JOB)
    assert ran.returncode == 0, ran.report(block)
    assert "✓ raw/support/tickets  demo|2025-03-03" in ran.output, ran.report(block)
    assert "marts/" not in ran.output, ran.report(block)


@covers(DG_LAUNCH_BLOCK)
@pytest.mark.slow
@pytest.mark.timeout(MAIN_JOB + PLATFORM_START + 60)
def test_dg_launch_block_runs_days_of_crm_and_its_reference_data_when_the_platform_runs(
    platform: Workdir,
) -> None:
    """Each of a source's two groups is one kind of partition: a group launches as one run."""
    block = readme_block(DG_LAUNCH_BLOCK)
    ran = run_shell(platform, block.text, MAIN_JOB)
    assert ran.returncode == 0, ran.report(block)
    assert ran.output.count("RUN_SUCCESS") >= 2, ran.report(block)


# --- Querying from BI tools -------------------------------------------------------------------

BI_BLOCK = "make bi-clients"


@covers(BI_BLOCK)
@pytest.mark.slow
@pytest.mark.timeout(MAIN_JOB + PLATFORM_START + 660)
def test_duckdb_cli_block_counts_the_demo_days_when_the_main_job_ran(
    platform: Workdir, main_job: Ran
) -> None:
    """`make bi-clients` for real (a few seconds once installed; 10 minutes allowed for a
    first install on a slow network), then the query on the published copy."""
    block = readme_block(BI_BLOCK)
    ran = run_shell(platform, block.text, 600 + QUICK)
    assert ran.returncode == 0, ran.report(block)
    printed = {
        day: int(count) for day, count in re.findall(r"(20\d\d-\d\d-\d\d)\D+?(\d+)", ran.output)
    }
    published = platform.path / "data" / "warehouse.published.duckdb"
    with duckdb.connect(str(published), read_only=True) as connection:
        counted = connection.execute(
            "SELECT _partition_key, count(*) FROM raw.crm__contacts "
            "WHERE _client_id = 'demo' GROUP BY 1"
        ).fetchall()
    # Every day the published copy holds for the demo client (the main job's days, and what
    # other tests on the shared platform synced), with the CLI's counts.
    assert printed and printed == dict(counted), ran.report(block)
    assert {f"2025-03-0{day}" for day in range(1, 4)} & set(printed), ran.report(block)


# --- The sandbox ------------------------------------------------------------------------------

TENANTS_BLOCK = 'curl -s "http://127.0.0.1:8700/_sandbox/tenants?tenant=1"'
TENANT_ENV_BLOCK = ".venv/bin/integration-platform sandbox tenants --tenant 1 > tenant1.env"


@covers(TENANTS_BLOCK)
def test_tenants_block_prints_tenant_1_credentials_when_the_platform_runs(
    platform: Workdir,
) -> None:
    block = readme_block(TENANTS_BLOCK)
    ran = run_shell(platform, block.text, QUICK)
    assert ran.returncode == 0, ran.report(block)
    vendor, command = json_documents(ran.output)
    assert vendor["vendor"] == "crm", ran.report(block)
    for listing in (vendor, command):
        [tenant] = listing["tenants"]
        assert tenant["tenant"] == 1, ran.report(block)
        crm = tenant["credentials"]["crm"]
        assert crm["CRM_CLIENT_ID"] == "sandbox-crm-client-t1", ran.report(block)
        assert crm["CRM_BASE_URL"] == f"http://127.0.0.1:{platform.ports.base}", ran.report(block)
    assert set(command["tenants"][0]["credentials"]) == {"crm", "billing", "support", "analytics"}


@covers(TENANT_ENV_BLOCK)
def test_tenant_env_block_extracts_as_tenant_1_when_the_platform_runs(platform: Workdir) -> None:
    block = readme_block(TENANT_ENV_BLOCK)
    ran = run_shell(platform, block.text, QUICK)
    assert ran.returncode == 0, ran.report(block)
    assert json_documents(ran.output)[-1]["records"] > 0, ran.report(block)
    pages = sorted((platform.path / "data" / "tenant1").glob("page-*.json"))
    assert pages, ran.report(block)
    assert '"ct_t1_' in pages[0].read_text(), "not tenant 1's contacts"
    truth = (platform.path / "truth-tenant1.csv").read_text().splitlines()
    assert truth[0].startswith("vendor,") and len(truth) > 100, truth[:3]


CRM_BLOCK = "TOKEN=$(curl -s -X POST http://127.0.0.1:8700/oauth/token"
BILLING_BLOCK = (
    'curl -s "http://127.0.0.1:8701/v1/invoices?limit=2&offset=0" '
    '-H "X-API-Key: $BILLING_API_KEY" -i'
)
SUPPORT_BLOCK = (
    'curl -s http://127.0.0.1:8702/graphql -H "Authorization: Bearer $SUPPORT_API_TOKEN"'
)
ANALYTICS_BLOCK = "TARGET='/v1/users?per_page=2&page=1'; TS=$(date +%s)"


@covers(CRM_BLOCK)
@covers(BILLING_BLOCK)
@covers(SUPPORT_BLOCK)
@covers(ANALYTICS_BLOCK)
@pytest.mark.parametrize(
    ("first_command", "shows"),
    [
        (CRM_BLOCK, ['"data": [', '"next_cursor": "']),
        (BILLING_BLOCK, ["HTTP/1.1 200", "x-ratelimit-remaining", '"total":']),
        (SUPPORT_BLOCK, ['"totalCount":', '"hasNextPage":true', '"email":']),
        (ANALYTICS_BLOCK, ['"data":', '"total_pages":']),
    ],
    ids=["crm", "billing", "support", "analytics"],
)
def test_vendor_curl_block_answers_with_records_when_the_demo_credentials_are_loaded(
    platform: Workdir, first_command: str, shows: list[str]
) -> None:
    block = readme_block(first_command)
    ran = run_shell(platform, block.text, QUICK, preamble=DEMO_CREDENTIALS)
    assert ran.returncode == 0, ran.report(block)
    compact = ran.output.replace('": ', '":').replace('": [', '":[')
    for text in shows:
        assert text.replace('": ', '":') in compact or text.lower() in ran.output.lower(), (
            f"{text!r} not shown\n" + ran.report(block)
        )


# --- Integration Platform API -----------------------------------------------------------------

API_BLOCK = (
    'KEY=$(cat data/api-admin.key); API=http://127.0.0.1:8000; AUTH="Authorization: Bearer $KEY"'
)


@covers(API_BLOCK)
@pytest.mark.slow
@pytest.mark.timeout(MAIN_JOB + PLATFORM_START + 60)
def test_api_block_syncs_acme_and_serves_its_customers_when_the_platform_runs(
    platform: Workdir,
) -> None:
    block = readme_block(API_BLOCK)
    ran = run_shell(platform, block.text, MAIN_JOB)
    assert ran.returncode == 0, ran.report(block)
    registered, sync, *_, page, customer = json_documents(ran.output)
    assert registered["id"] == "acme", ran.report(block)
    assert sync["client_id"] == "acme", ran.report(block)
    states = re.findall(r"^(queued|extracting|transforming|succeeded|failed)$", ran.output, re.M)
    assert states and states[-1] == "succeeded", ran.report(block)
    assert len(page["data"]) == 2, ran.report(block)
    # The customer read by id: the first of the page, with its 360 view and provenance.
    assert customer["customer"]["customer_id"] == page["data"][0]["customer_id"], ran.report(block)
    assert customer["customer_360"] is not None, ran.report(block)
    record_keys = customer["provenance"]["record_keys"]
    assert record_keys and all(key.startswith("acme:") for key in record_keys), record_keys


# --- The Dagster project (dg) -----------------------------------------------------------------

DG_DEFS_BLOCK = ".venv/bin/dg check defs"


@covers(DG_DEFS_BLOCK)
def test_dg_defs_block_checks_and_lists_every_source_when_run_as_the_readme_shows(
    workdir: Workdir,
) -> None:
    block = readme_block(DG_DEFS_BLOCK)
    ran = run_shell(workdir, block.text, QUICK)
    assert ran.returncode == 0, ran.report(block)
    assert "All definitions loaded successfully" in ran.output, ran.report(block)
    for spec in sorted((PROJECT_ROOT / "sources").glob("*.yaml")):
        assert f"raw/{spec.stem}/" in ran.output, ran.report(block)
    for name in ("marts/dim_customers", "crm_daily_schedule", "automation_sensor"):
        assert name in ran.output, ran.report(block)
