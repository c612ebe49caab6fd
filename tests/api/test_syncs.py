"""Syncs over HTTP against a stand-in Dagster: raw runs launched in the request and tagged,
idempotency, one sync per client, states read from Dagster (the dbt part is Dagster's
automation's), status figures and errors in plain words, Dagster down or refusing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from integration_platform.clients.database import open_store
from integration_platform.clients.syncs import SyncLedger, SyncRequest
from tests.api.conftest import Api
from tests.api.test_clients import CRM, register

YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
BILLING = {
    "BILLING_API_KEY": "acme-billing-key-123",
    "BILLING_BASE_URL": "http://127.0.0.1:9",
    "BILLING_WEBHOOK_SECRET": "whsec_acme_0123456789",
}


def sync_state(api: Api, client_id: str, sync_id: str) -> dict:
    return api.http.get(f"/integrations/{client_id}/syncs/{sync_id}").json()


def finish_raw_runs(api: Api, sync_id: str, **figures: int) -> None:
    for run in api.dagster.runs_with(**{"integration_platform/sync_id": sync_id}):
        api.dagster.finish(run.run_id, figures=figures or None)


def stored_syncs(api: Api) -> int:
    engine = create_engine(api.store_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("select count(*) from syncs")).scalar_one())
    finally:
        engine.dispose()


def test_sync_launches_one_run_of_the_days_and_one_of_the_reference_data_when_requested(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM, "billing": BILLING})
    response = api.http.post(
        "/integrations/acme/sync", json={"start_date": "2025-03-01", "end_date": "2025-03-07"}
    )
    assert response.status_code == 202
    sync = response.json()
    assert sync["state"] == "extracting"  # the runs were launched in the request
    assert sync["sources"] == ["billing", "crm"]
    # Both sources' daily endpoints in one run over the days; crm's reference companies,
    # partitioned by the client alone, in a run of their own (a run has one kind of partition).
    runs = api.dagster.runs
    by_part = {run.tags["integration_platform/raw_part"]: run for run in runs}
    assert len(runs) == 2
    assert set(by_part) == {"days", "reference"}
    assert {run.tags["integration_platform/source"] for run in runs} == {"billing,crm"}
    days = by_part["days"]
    assert days.tags["integration_platform/client_id"] == "acme"
    assert days.tags["integration_platform/sync_id"] == sync["id"]
    assert days.tags["integration_platform/stage"] == "raw"
    assert days.tags["integration_platform/kind"] == "sync"  # the Runs view filters on it
    assert days.tags["dagster/asset_partition_range_start"] == "acme|2025-03-01"
    assert days.tags["dagster/asset_partition_range_end"] == "acme|2025-03-07"
    assert days.assets == [
        ["raw", "billing", "customers"],
        ["raw", "billing", "invoices"],
        ["raw", "crm", "contacts"],
    ]
    assert days.config == {}
    reference = by_part["reference"]
    assert reference.assets == [["raw", "crm", "companies"]]
    assert reference.tags["dagster/partition"] == "acme"
    assert "dagster/asset_partition_range_start" not in reference.tags
    assert sync["raw_runs"]["days"]["run_id"] == days.run_id
    assert sync["raw_runs"]["days"]["url"].endswith(f"/runs/{days.run_id}")
    assert sync["raw_runs"]["reference"]["run_id"] == reference.run_id
    assert sync["transform_run"] is None
    assert "acme" in api.dagster.partitions  # the client became a partition of `clients`
    assert api.http.get("/clients/acme").json()["dagster_partition_registered_at"] is not None


def test_full_refresh_sets_every_raw_asset_config_when_asked(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    api.http.post("/integrations/acme/sync", json={"full_refresh": True})
    by_part = {run.tags["integration_platform/raw_part"]: run for run in api.dagster.runs}
    assert by_part["days"].config == {
        "ops": {"raw__crm__contacts": {"config": {"full_refresh": True}}}
    }
    assert by_part["reference"].config == {
        "ops": {"raw__crm__companies": {"config": {"full_refresh": True}}}
    }
    assert by_part["days"].tags["dagster/asset_partition_range_start"] == f"acme|{YESTERDAY}"


def test_the_same_idempotency_key_returns_the_same_sync_when_retried(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    headers = {"Idempotency-Key": "order-42"}
    first = api.http.post("/integrations/acme/sync", json={}, headers=headers)
    finish_raw_runs(api, first.json()["id"])
    api.dagster.automation_builds_dbt()
    again = api.http.post("/integrations/acme/sync", json={}, headers=headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["reused"] == "idempotency_key"
    assert again.json()["state"] == "succeeded"
    # crm's raw runs: its days and its reference data, each once
    assert len(api.dagster.runs_with(**{"integration_platform/stage": "raw"})) == 2


def test_an_idempotency_key_conflicts_when_reused_for_another_request(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    headers = {"Idempotency-Key": "order-43"}
    api.http.post("/integrations/acme/sync", json={}, headers=headers)
    other = api.http.post("/integrations/acme/sync", json={"full_refresh": True}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_a_running_sync_is_returned_not_doubled_when_many_requests_arrive_at_once(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM})

    def request(_: int) -> tuple[int, str]:
        response = api.http.post("/integrations/acme/sync", json={})
        return response.status_code, response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(request, range(16)))
    assert len({sync_id for _, sync_id in answers}) == 1
    assert sorted(status for status, _ in answers) == [200] * 15 + [202]
    # Every request has been answered and nothing works in the background: what was launched
    # is all there will be.
    assert len(api.dagster.runs) == 2  # crm's days and its reference data, once each
    again = api.http.post("/integrations/acme/sync", json={"sources": ["crm"]})
    assert again.json()["reused"] == "already_running"


def test_the_sync_succeeds_only_after_dbt_materialized_after_its_raw_runs_when_automation_builds(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    raw = list(api.dagster.runs)
    assert len(raw) == 2
    # A dbt build that started while the raw runs were still going does not count.
    api.dagster.automation_builds_dbt()
    assert sync_state(api, "acme", sync["id"])["state"] == "extracting"
    api.dagster.finish(raw[0].run_id, figures={"records": 40, "rows_loaded": 40, "retries": 3})
    assert sync_state(api, "acme", sync["id"])["state"] == "extracting"
    api.dagster.finish(
        raw[1].run_id,
        figures={"records": 40, "rows_loaded": 40, "retries": 3, "429s": 2, "dead_letters": 1},
    )
    assert sync_state(api, "acme", sync["id"])["state"] == "transforming"
    assert not api.dagster.runs_with(**{"integration_platform/stage": "transform"})  # no launch
    queued = api.dagster.automation_builds_dbt(status="QUEUED")
    transforming = sync_state(api, "acme", sync["id"])
    assert transforming["state"] == "transforming"
    assert transforming["transform_run"]["run_id"] == queued
    # Every model materialized, the copy the API serves not yet published: not done yet.
    api.dagster.finish(queued, status="STARTED")
    next(r for r in api.dagster.runs if r.run_id == queued).materialized = True
    assert sync_state(api, "acme", sync["id"])["state"] == "transforming"
    api.dagster.finish(queued)
    done = sync_state(api, "acme", sync["id"])
    assert done["state"] == "succeeded"
    assert done["transform_run"]["run_id"] == queued
    assert done["finished_at"] is not None

    status = api.http.get("/integrations/acme/status").json()
    assert status["sync"]["state"] == "succeeded"
    crm = next(s for s in status["sources"] if s["source"] == "crm")
    assert crm["state"] == "succeeded"
    assert crm["run_id"] in {run.run_id for run in raw}
    assert (crm["records"], crm["retries"], crm["throttled_429s"], crm["dead_letters"]) == (
        80,
        6,
        2,
        1,
    )  # the days' run and the reference run, each reporting its figures
    assert set(crm["freshness"]) == {"raw/crm/companies", "raw/crm/contacts"}
    assert crm["last_error"] is None
    assert status["transform"]["state"] == "succeeded"
    assert status["transform"]["run_id"] == queued
    assert set(status["transform"]["freshness"]) == {
        "marts/dim_customers",
        "staging/stg_crm__contacts",
    }


def test_an_ended_sync_is_read_from_the_store_without_asking_dagster_again(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    finish_raw_runs(api, sync["id"])
    api.dagster.automation_builds_dbt()
    assert sync_state(api, "acme", sync["id"])["state"] == "succeeded"
    asked = api.dagster.run_queries
    assert sync_state(api, "acme", sync["id"])["state"] == "succeeded"
    assert api.dagster.run_queries == asked


def test_the_sync_fails_with_the_dbt_runs_reason_when_the_automation_build_fails(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    finish_raw_runs(api, sync["id"])
    reason = "dbt build failed: model dim_customers: Binder Error: column email not found"
    failed_run = api.dagster.automation_builds_dbt(status="FAILURE", failure=reason)
    failed = sync_state(api, "acme", sync["id"])
    assert failed["state"] == "failed"
    assert failed["error"] == f"transform: {reason}"
    assert failed["transform_run"]["run_id"] == failed_run
    status = api.http.get("/integrations/acme/status").json()
    assert status["transform"]["state"] == "failed"
    assert status["transform"]["last_error"]["message"] == reason


def test_status_gives_the_failure_in_plain_words_when_a_raw_run_fails(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    reason = (
        "crm.contacts [acme|2025-03-01]: 401 Unauthorized from /oauth/token: check "
        "CRM_CLIENT_SECRET"
    )
    [days] = api.dagster.runs_with(**{"integration_platform/raw_part": "days"})
    [reference] = api.dagster.runs_with(**{"integration_platform/raw_part": "reference"})
    api.dagster.finish(reference.run_id)
    api.dagster.finish(days.run_id, status="FAILURE", failure=reason)
    assert sync_state(api, "acme", sync["id"])["state"] == "failed"
    status = api.http.get("/integrations/acme/status").json()
    crm = next(s for s in status["sources"] if s["source"] == "crm")
    assert crm["state"] == "failed"
    assert crm["last_error"]["message"] == reason
    assert "Traceback" not in str(status)
    assert status["sync"]["error"] == reason
    # The client may sync again once the failed one ended.
    assert api.http.post("/integrations/acme/sync", json={}).status_code == 202


def test_the_sync_fails_saying_so_when_a_raw_run_is_canceled(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    [days] = api.dagster.runs_with(**{"integration_platform/raw_part": "days"})
    [reference] = api.dagster.runs_with(**{"integration_platform/raw_part": "reference"})
    api.dagster.finish(reference.run_id)
    api.dagster.finish(days.run_id, status="CANCELED")
    canceled = sync_state(api, "acme", sync["id"])
    assert canceled["state"] == "failed"
    assert canceled["error"] == f"run {days.run_id} was canceled"


def test_nothing_is_kept_and_dagsters_reason_is_given_when_the_launch_is_refused(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM})
    api.dagster.launches_refused = "DagsterInvariantViolationError: no such asset"
    refused = api.http.post("/integrations/acme/sync", json={})
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "dagster_refused"
    assert "no such asset" in refused.json()["error"]["message"]
    assert stored_syncs(api) == 0
    api.dagster.launches_refused = None
    assert api.http.post("/integrations/acme/sync", json={}).status_code == 202


def test_runs_already_launched_are_terminated_when_a_later_launch_is_refused(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    api.dagster.launches_refused = "DagsterInvariantViolationError: no such asset"
    api.dagster.launches_before_refusal = 1  # crm's days launch, its reference data does not
    refused = api.http.post("/integrations/acme/sync", json={})
    assert refused.status_code == 502
    [days] = api.dagster.runs
    assert days.status == "CANCELED"
    assert stored_syncs(api) == 0


def test_nothing_is_kept_and_the_client_is_told_to_retry_when_dagster_is_down(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    api.dagster.server.stop()
    response = api.http.post(
        "/integrations/acme/sync", json={}, headers={"Idempotency-Key": "retry-me"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dagster_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert "did not answer" in response.json()["error"]["message"]
    assert stored_syncs(api) == 0
    status = api.http.get("/integrations/acme/status")
    assert status.status_code == 200
    assert "did not answer" in status.json()["dagster_error"]
    assert {s["state"] for s in status.json()["sources"]} == {"unknown"}
    assert status.json()["sync"] is None
    ready = api.http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["dagster"]["ok"] is False
    assert ready.json()["checks"]["store"]["ok"] is True


def test_invalid_ranges_and_sources_are_refused_with_their_paths_when_requested(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM})
    today = datetime.now(UTC).date().isoformat()
    cases = [
        ({"end_date": today}, "end_date"),
        ({"start_date": "2025-03-05", "end_date": "2025-03-01"}, "start_date"),
        ({"start_date": "2024-12-31", "end_date": "2025-01-02"}, "start_date"),
        ({"start_date": "2025-01-01", "end_date": "2026-06-01"}, "start_date"),
        ({"sources": ["erp"]}, "sources[0]"),
        ({"sources": ["crm", "billing"]}, "sources[1]"),  # no billing credentials
        ({"sources": []}, "sources"),
        ({"end_date": "yesterday"}, "end_date"),
        ({"extra": 1}, "extra"),
    ]
    for body, path in cases:
        response = api.http.post("/integrations/acme/sync", json=body)
        assert response.status_code == 422, (body, response.text)
        paths = [f["path"] for f in response.json()["error"]["fields"]]
        assert path in paths, (body, response.text)
    assert api.dagster.runs == []


def test_a_client_without_credentials_cannot_sync_until_it_has_some(api: Api) -> None:
    register(api, "acme")
    response = api.http.post("/integrations/acme/sync", json={})
    assert response.status_code == 422
    assert "PATCH /clients/acme" in response.json()["error"]["fields"][0]["message"]
    assert api.http.post("/integrations/nobody/sync", json={}).status_code == 404


def test_metrics_count_sync_requests_and_each_outcome_once_when_syncs_end(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    api.http.post("/integrations/acme/sync", json={})
    api.http.post("/integrations/acme/sync", json={"sources": ["erp"]})
    finish_raw_runs(api, sync["id"])
    api.dagster.automation_builds_dbt()
    for _ in range(3):  # read it ended several times: counted once
        assert sync_state(api, "acme", sync["id"])["state"] == "succeeded"
    api.http.get("/integrations/acme/status")
    failing = api.http.post("/integrations/acme/sync", json={}).json()
    for run in api.dagster.runs_with(**{"integration_platform/sync_id": failing["id"]}):
        api.dagster.finish(run.run_id, status="FAILURE", failure="boom")
    assert sync_state(api, "acme", failing["id"])["state"] == "failed"
    assert sync_state(api, "acme", failing["id"])["state"] == "failed"
    text = api.http.get("/metrics").text
    assert 'integration_platform_sync_requests_total{result="created"} 2.0' in text
    assert 'integration_platform_sync_requests_total{result="already_running"} 1.0' in text
    assert 'integration_platform_sync_requests_total{result="rejected"} 1.0' in text
    assert 'integration_platform_syncs_finished_total{outcome="succeeded"} 1.0' in text
    assert 'integration_platform_syncs_finished_total{outcome="failed"} 1.0' in text
    assert (
        'integration_platform_api_request_duration_seconds_count{method="POST",'
        'route="/integrations/{client_id}/sync",status="202"} 2.0' in text
    )


def test_a_new_client_becomes_a_dagster_partition_when_registered(api: Api) -> None:
    created = register(api, "acme", credentials={"crm": CRM})
    assert created["dagster_partition_registered_at"] is not None
    assert "acme" in api.dagster.partitions  # schedules include it before any sync


def test_a_client_registered_while_dagster_refuses_partitions_is_added_by_its_first_sync(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without DAGSTER_HOME there is no local instance to fall back on (make test sets one).
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    api.dagster.declares_clients = False
    created = register(api, "acme", credentials={"crm": CRM})
    assert created["dagster_partition_registered_at"] is None
    api.dagster.declares_clients = True
    assert api.http.post("/integrations/acme/sync", json={}).status_code == 202
    assert "acme" in api.dagster.partitions
    assert api.http.get("/clients/acme").json()["dagster_partition_registered_at"] is not None


def test_a_sync_whose_launching_request_never_finished_fails_and_frees_the_client_when_read(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM})
    # What an API stopped in the middle of a launch leaves: a queued sync without runs.
    stuck = SyncLedger(open_store(api.store_url)).open(
        "acme",
        SyncRequest(("crm",), date(2025, 3, 1), date(2025, 3, 1), False, "0" * 64),
    )
    assert api.http.post("/integrations/acme/sync", json={}).json()["state"] == "queued"
    engine = create_engine(api.store_url)
    with engine.begin() as connection:
        connection.execute(
            text("update syncs set created_at = :at where id = :id"),
            {"at": datetime.now(UTC) - timedelta(hours=1), "id": stuck.sync.id},
        )
    engine.dispose()
    failed = sync_state(api, "acme", stuck.sync.id)
    assert failed["state"] == "failed"
    assert "never finished" in failed["error"]
    assert api.http.post("/integrations/acme/sync", json={}).status_code == 202


def test_a_new_request_starts_a_new_sync_when_the_last_one_ended_unread(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    first = api.http.post("/integrations/acme/sync", json={}).json()
    finish_raw_runs(api, first["id"])
    api.dagster.automation_builds_dbt()  # it ended; nobody has asked since
    second = api.http.post("/integrations/acme/sync", json={})
    assert second.status_code == 202
    assert second.json()["id"] != first["id"]
    assert sync_state(api, "acme", first["id"])["state"] == "succeeded"
