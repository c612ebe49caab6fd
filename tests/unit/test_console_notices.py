"""`make run`'s console prints each warning once: the same notice about many things, or the
same line written twice by Dagster's code server (its format and ours), is one notice."""

from __future__ import annotations

import json
from pathlib import Path

from integration_platform.console.log_lines import LogTail
from integration_platform.console.monitor import Child, Console

RUN = "ee729883-389d-4743-b118-b0aa287b76dd"


def observation_warning(test: str, run: str = RUN) -> list[str]:
    """What dagster.log holds for one dbt source test logged as an observation (as seen in a
    real `make run` sync): Dagster's text line and our JSON line with the longer message."""
    message = (
        f"__ASSET_JOB - {run} - dbt_models - Logging an `AssetObservation` instead of "
        f"an `AssetCheckResult` for dbt test `{test}`."
    )
    return [
        f"2026-12-03 10:03:31 +0000 - dagster - WARNING - {message}",
        json.dumps(
            {
                "event": message + "\n\nThis test was not included in Dagster's asset "
                "check selection, and was likely executed due to dbt indirect selection.",
                "level": "warning",
                "logger": "dagster.builtin",
            }
        ),
    ]


def console_output(tmp_path: Path, lines: list[str]) -> tuple[list[str], Child]:
    log = tmp_path / "dagster.log"
    log.touch()
    child = Child("dagster", None, log, LogTail(log))
    printed: list[str] = []
    console = Console(printed.append, status_every=60)
    console.width = len(child.name)
    log.write_text("\n".join(lines) + "\n")
    console.read(child)
    return printed, child


def test_a_notice_about_forty_dbt_tests_in_two_runs_is_printed_once(tmp_path: Path) -> None:
    tests = [f"source_not_null_support_tickets__column_{n}" for n in range(20)]
    lines = [
        line
        for run in (RUN, "0b1d2c3e-0000-4111-8222-933344445555")
        for test in tests
        for line in observation_warning(test, run)
    ]
    printed, child = console_output(tmp_path, lines)
    assert len(printed) == 1, printed
    assert "Logging an `AssetObservation`" in printed[0]
    assert child.repeats == len(lines) - 1


def test_different_warnings_are_each_printed(tmp_path: Path) -> None:
    lines = [
        *observation_warning("a_test"),
        json.dumps({"event": "run_worker_lost", "level": "warning"}),
        json.dumps({"event": "webhook_rejected", "level": "error"}),
    ]
    printed, _ = console_output(tmp_path, lines)
    assert len(printed) == 3, printed
