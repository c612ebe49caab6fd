"""Syncs over HTTP against a stand-in Dagster: runs launched and tagged, idempotency, one sync
per client, the dbt run after the raw runs, status figures and errors in plain words."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from tests.api.conftest import Api
from tests.api.test_clients import CRM, register

YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
BILLING = {
    "BILLING_API_KEY": "acme-billing-key-123",
    "BILLING_BASE_URL": "http://127.0.0.1:9",
    "BILLING_WEBHOOK_SECRET": "whsec_acme_0123456789",
}


def eventually(check: Callable[[], object], timeout: float = 90.0) -> object:
    """Poll until check() is truthy. The deadline is generous because it only matters on
    failure: on a busy 2-core machine the sync worker has taken over 10 s to take a step."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def after_more_passes(api: Api, passes: int = 3) -> None:
    """Return once the API's background worker has asked Dagster for runs `passes` more times:
    what it would have launched by then, it has launched."""
    seen = api.dagster.run_queries
    eventually(lambda: api.dagster.run_queries >= seen + passes)


def sync_state(api: Api, client_id: str, sync_id: str) -> dict:
    return api.http.get(f"/integrations/{client_id}/syncs/{sync_id}").json()


def finish_every_run(api: Api, client_id: str, sync_id: str) -> None:
    """Let the raw runs, then the transform run, succeed; return once the sync succeeded."""
    eventually(lambda: api.dagster.runs_with(**{"integration_platform/sync_id": sync_id}))
    for run in api.dagster.runs_with(**{"integration_platform/sync_id": sync_id}):
        api.dagster.finish(run.run_id)
    eventually(
        lambda: api.dagster.runs_with(
            **{"integration_platform/sync_id": sync_id, "integration_platform/stage": "transform"}
        )
    )
    for run in api.dagster.runs_with(**{"integration_platform/stage": "transform"}):
        api.dagster.finish(run.run_id)
    eventually(lambda: sync_state(api, client_id, sync_id)["state"] == "succeeded")


def test_sync_launches_one_raw_run_per_source_tagged_for_the_client_when_requested(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM, "billing": BILLING})
    response = api.http.post(
        "/integrations/acme/sync", json={"start_date": "2025-03-01", "end_date": "2025-03-07"}
    )
    assert response.status_code == 202
    sync = response.json()
    assert sync["state"] == "queued"
    assert sync["sources"] == ["billing", "crm"]
    # billing's daily endpoints; crm's daily contacts and, in a run of their own (a run has
    # one kind of partition), its reference companies, partitioned by the client alone.
    runs = eventually(lambda: len(api.dagster.runs) == 3 and api.dagster.runs)
    assert isinstance(runs, list)
    by_part = {run.tags["integration_platform/raw_part"]: run for run in runs}
    assert set(by_part) == {"billing", "crm", "crm:reference"}
    assert {run.tags["integration_platform/source"] for run in runs} == {"billing", "crm"}
    crm = by_part["crm"]
    assert crm.tags["integration_platform/client_id"] == "acme"
    assert crm.tags["integration_platform/sync_id"] == sync["id"]
    assert crm.tags["integration_platform/kind"] == "sync"  # the Runs view filters on it
    assert crm.tags["dagster/asset_partition_range_start"] == "acme|2025-03-01"
    assert crm.tags["dagster/asset_partition_range_end"] == "acme|2025-03-07"
    assert crm.assets == [["raw", "crm", "contacts"]]
    assert crm.config == {}
    reference = by_part["crm:reference"]
    assert reference.assets == [["raw", "crm", "companies"]]
    assert reference.tags["dagster/partition"] == "acme"
    assert "dagster/asset_partition_range_start" not in reference.tags
    followed = eventually(lambda: sync_state(api, "acme", sync["id"])["raw_runs"])
    assert isinstance(followed, dict)
    assert followed["crm"]["run_id"] == crm.run_id
    assert followed["crm"]["url"].endswith(f"/runs/{crm.run_id}")
    assert followed["crm:reference"]["run_id"] == reference.run_id
    assert "acme" in api.dagster.partitions  # the client became a partition of `clients`


def test_full_refresh_sets_every_raw_asset_config_when_asked(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    api.http.post("/integrations/acme/sync", json={"full_refresh": True})
    runs = eventually(lambda: len(api.dagster.runs) == 2 and api.dagster.runs)
    assert isinstance(runs, list)
    by_part = {run.tags["integration_platform/raw_part"]: run for run in runs}
    assert by_part["crm"].config == {
        "ops": {"raw__crm__contacts": {"config": {"full_refresh": True}}}
    }
    assert by_part["crm:reference"].config == {
        "ops": {"raw__crm__companies": {"config": {"full_refresh": True}}}
    }
    assert by_part["crm"].tags["dagster/asset_partition_range_start"] == f"acme|{YESTERDAY}"


def test_the_same_idempotency_key_returns_the_same_sync_when_retried(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    headers = {"Idempotency-Key": "order-42"}
    first = api.http.post("/integrations/acme/sync", json={}, headers=headers)
    finish_every_run(api, "acme", first.json()["id"])
    again = api.http.post("/integrations/acme/sync", json={}, headers=headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["reused"] == "idempotency_key"
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
    after_more_passes(api)  # the background worker has had every chance to launch twice
    assert len(api.dagster.runs) == 2  # crm's days and its reference data, once each
    again = api.http.post("/integrations/acme/sync", json={"sources": ["crm"]})
    assert again.json()["reused"] == "already_running"


def test_dbt_runs_after_the_raw_runs_and_the_sync_succeeds_when_every_run_succeeds(
    api: Api,
) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    eventually(lambda: len(api.dagster.runs) == 2)
    raw = list(api.dagster.runs)
    after_more_passes(api)
    assert len(api.dagster.runs) == 2  # nothing downstream before the raw runs end
    for run in raw:
        api.dagster.finish(
            run.run_id,
            figures={"records": 40, "rows_loaded": 40, "retries": 3, "429s": 2, "dead_letters": 1},
        )
    transform = eventually(
        lambda: api.dagster.runs_with(**{"integration_platform/stage": "transform"})
    )
    assert isinstance(transform, list)
    # Downstream of crm, plus the seed they read (a fresh warehouse has none); not billing's.
    assert transform[0].assets == [
        ["dbt", "nicknames"],
        ["marts", "dim_customers"],
        ["staging", "stg_crm__contacts"],
    ]
    assert transform[0].tags["integration_platform/client_id"] == "acme"
    assert "dagster/asset_partition_range_start" not in transform[0].tags
    assert sync_state(api, "acme", sync["id"])["state"] == "transforming"
    api.dagster.finish(transform[0].run_id)
    eventually(lambda: sync_state(api, "acme", sync["id"])["state"] == "succeeded")

    status = api.http.get("/integrations/acme/status").json()
    assert status["sync"]["state"] == "succeeded"
    crm = next(s for s in status["sources"] if s["source"] == "crm")
    assert crm["state"] == "succeeded"
    assert crm["run_id"] in {run.run_id for run in raw}
    assert (crm["records"], crm["retries"], crm["throttled_429s"], crm["dead_letters"]) == (
        80,
        6,
        4,
        2,
    )  # the days' run and the reference run, each reporting its figures
    assert set(crm["freshness"]) == {"raw/crm/companies", "raw/crm/contacts"}
    assert crm["last_error"] is None
    assert status["transform"]["state"] == "succeeded"


def test_status_gives_the_failure_in_plain_words_when_a_raw_run_fails(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    eventually(lambda: len(api.dagster.runs) == 2)
    reason = (
        "crm.contacts [acme|2025-03-01]: 401 Unauthorized from /oauth/token: check "
        "CRM_CLIENT_SECRET"
    )
    [days] = api.dagster.runs_with(**{"integration_platform/raw_part": "crm"})
    [reference] = api.dagster.runs_with(**{"integration_platform/raw_part": "crm:reference"})
    api.dagster.finish(reference.run_id)
    api.dagster.finish(days.run_id, status="FAILURE", failure=reason)
    eventually(lambda: sync_state(api, "acme", sync["id"])["state"] == "failed")
    status = api.http.get("/integrations/acme/status").json()
    crm = next(s for s in status["sources"] if s["source"] == "crm")
    assert crm["state"] == "failed"
    assert crm["last_error"]["message"] == reason
    assert "Traceback" not in str(status)
    assert status["sync"]["error"] == f"crm: {reason}"
    assert not api.dagster.runs_with(**{"integration_platform/stage": "transform"})
    # The client may sync again once the failed one ended.
    assert api.http.post("/integrations/acme/sync", json={}).status_code == 202


def test_sync_fails_with_dagsters_reason_when_the_launch_is_refused(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    api.dagster.launches_refused = "DagsterInvariantViolationError: no such asset"
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    failed = eventually(
        lambda: (
            sync_state(api, "acme", sync["id"])["state"] == "failed"
            and sync_state(api, "acme", sync["id"])
        )
    )
    assert isinstance(failed, dict)
    assert "no such asset" in failed["error"]


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


def test_metrics_count_sync_requests_and_outcomes_when_syncs_run(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    sync = api.http.post("/integrations/acme/sync", json={}).json()
    api.http.post("/integrations/acme/sync", json={})
    api.http.post("/integrations/acme/sync", json={"sources": ["erp"]})
    finish_every_run(api, "acme", sync["id"])
    text = api.http.get("/metrics").text
    assert 'integration_platform_sync_requests_total{result="created"} 1.0' in text
    assert 'integration_platform_sync_requests_total{result="already_running"} 1.0' in text
    assert 'integration_platform_sync_requests_total{result="rejected"} 1.0' in text
    assert 'integration_platform_syncs_finished_total{outcome="succeeded"} 1.0' in text
    assert (
        'integration_platform_api_request_duration_seconds_count{method="POST",'
        'route="/integrations/{client_id}/sync",status="202"} 1.0' in text
    )


def test_sync_waits_and_status_says_why_when_dagster_is_down(api: Api) -> None:
    register(api, "acme", credentials={"crm": CRM})
    api.dagster.server.stop()
    response = api.http.post("/integrations/acme/sync", json={})
    assert response.status_code == 202
    waiting = eventually(
        lambda: (sync_state(api, "acme", response.json()["id"])["error"] or "").startswith(
            "waiting for Dagster"
        )
    )
    assert waiting
    status = api.http.get("/integrations/acme/status")
    assert status.status_code == 200
    assert "did not answer" in status.json()["dagster_error"]
    assert {s["state"] for s in status.json()["sources"]} == {"unknown"}
    assert status.json()["sync"]["state"] == "queued"
    ready = api.http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["dagster"]["ok"] is False
    assert ready.json()["checks"]["store"]["ok"] is True
