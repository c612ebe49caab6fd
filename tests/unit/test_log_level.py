"""LOG_LEVEL: any case is a level; anything else stops a command with one line that says what to
set."""

from __future__ import annotations

import logging

import pytest

from integration_platform import logs
from integration_platform.environment import SettingError


@pytest.mark.parametrize("given", ["warning", "Warning", "WARNING"])
def test_a_level_in_any_case_sets_that_level_when_logging_is_configured(
    given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", given)
    try:
        logs.configure_logging()
        assert logging.getLogger().level == logging.WARNING
    finally:
        monkeypatch.delenv("LOG_LEVEL")
        logs.configure_logging()
    assert logging.getLogger().level == logging.INFO  # unset: INFO


def test_a_level_that_is_not_one_names_the_variable_and_the_levels_when_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(SettingError) as raised:
        logs.log_level()
    assert str(raised.value) == (
        "LOG_LEVEL='loud' is not a log level: set it to one of DEBUG, INFO, WARNING, ERROR, "
        "CRITICAL, or unset it (INFO)"
    )


def test_a_command_prints_a_bad_log_level_in_one_line_when_it_starts(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from click.testing import CliRunner

    from integration_platform.cli import main

    monkeypatch.setenv("LOG_LEVEL", "verbose")
    result = CliRunner().invoke(main, ["validate"])
    printed = result.output + "".join(capfd.readouterr())
    assert result.exit_code == 1, printed
    assert printed.strip().splitlines() == [
        "Error: LOG_LEVEL='verbose' is not a log level: set it to one of DEBUG, INFO, WARNING, "
        "ERROR, CRITICAL, or unset it (INFO)"
    ], printed  # no traceback: a setting to change, and how


@pytest.mark.parametrize(
    ("variable", "option", "expected"),
    [("debug", None, "DEBUG"), (None, None, "INFO"), ("debug", "warning", "WARNING")],
)
def test_the_workers_log_at_log_level_unless_the_option_says_otherwise(
    variable: str | None,
    option: str | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner
    from dagster_celery.app import app

    from integration_platform.cli import main
    from integration_platform.cli import workers as workers_command

    started: list[list[str]] = []
    monkeypatch.setattr(app, "worker_main", started.append)  # not a worker: what it is given
    monkeypatch.setattr(workers_command, "check_broker", lambda url: None)
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    if variable is None:
        monkeypatch.delenv("LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("LOG_LEVEL", variable)
    result = CliRunner().invoke(main, ["workers", *(["--loglevel", option] if option else [])])
    assert result.exit_code == 0, result.output
    (argv,) = started
    assert f"--loglevel={expected}" in argv
