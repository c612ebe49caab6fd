"""Run failures in plain words: the Failure's description, cleaned; never a stack trace."""

from __future__ import annotations

from integration_platform.orchestration.runs import MAX_ERROR_CHARS, _plain


def test_the_failure_description_is_kept_without_terminal_colours_when_present() -> None:
    event = {
        "stepKey": "dbt_models",
        "error": {"message": "Traceback (most recent call last)"},
        "failureMetadata": {"description": "13 of 212 \x1b[31mERROR\x1b[0m creating model"},
    }
    assert _plain(event) == "13 of 212 ERROR creating model"


def test_a_long_description_is_cut_with_a_pointer_to_the_logs() -> None:
    text = _plain({"failureMetadata": {"description": "x" * 5000}})
    assert len(text) < MAX_ERROR_CHARS + 80
    assert text.endswith("(the whole message is in the run's logs)")


def test_only_the_first_line_of_an_exception_is_given_when_there_is_no_description() -> None:
    event = {
        "stepKey": "raw__crm__contacts",
        "failureMetadata": None,
        "error": {"message": "ValueError: bad cursor\n  File 'x.py', line 3"},
    }
    assert _plain(event) == "raw__crm__contacts: ValueError: bad cursor"


def test_a_long_quoted_command_line_is_left_out_so_the_reason_fits() -> None:
    description = (
        "The dbt CLI process with command\n\n`dbt build --select "
        + "m " * 400
        + "`\n\nfailed with exit code `1`.\n\nErrors parsed from dbt logs:\n"
        "Catalog Error: Table with name stg_analytics__users does not exist!"
    )
    text = _plain({"failureMetadata": {"description": description}})
    assert "`…`" in text
    assert text.endswith("Table with name stg_analytics__users does not exist!")
