"""`/integrations/{client_id}`: start a sync, follow it, and the client's status per source.

A sync's raw runs are launched in its request; its state is read from Dagster whenever it is
asked for, and stored once it ended (an ended sync needs no more questions to Dagster).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from integration_platform.api.auth import require
from integration_platform.api.errors import ApiError, error_responses
from integration_platform.api.routes.clients import ClientIdPath, Found, visible_client
from integration_platform.api.schemas import (
    LastErrorOut,
    RunLink,
    SourceStatusOut,
    StageOut,
    StatusOut,
    SyncCreate,
    SyncOut,
)
from integration_platform.api.services import Services
from integration_platform.clients.api_keys import Principal
from integration_platform.clients.errors import ClientInactive, StoreError
from integration_platform.clients.registry import Client
from integration_platform.clients.syncs import Opened, Reuse, Sync, SyncRequest
from integration_platform.clients.variables import source_variables
from integration_platform.logs import get_logger
from integration_platform.orchestration.dagster_graphql import DagsterRefused, DagsterUnavailable
from integration_platform.orchestration.plan import plan_sync
from integration_platform.orchestration.status import StageStatus

router = APIRouter(tags=["syncs"])
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying with the same key returns the sync the first request created.",
    ),
]
SyncIdPath = Annotated[str, Path(pattern=r"^syn_[0-9a-f]{32}$")]
# Seconds a client should wait before retrying a sync Dagster could not take.
RETRY_AFTER_SECONDS = 30

_log = get_logger("integration_platform.api")


def current(found: Services, sync: Sync) -> Sync:
    """The sync as Dagster tells it now (an ended one as stored; Dagster silent: as last seen).
    The first to see it end stores it and counts it in the metrics."""
    if not sync.active:
        return sync
    try:
        seen = found.sync_states.observe(sync)
    except (DagsterUnavailable, DagsterRefused) as exc:
        _log.info("sync_state_unknown", sync_id=sync.id, reason=str(exc))
        return sync
    if (seen.state, seen.error, seen.raw_runs, seen.transform_run_id) == (
        sync.state,
        sync.error,
        sync.raw_runs,
        sync.transform_run_id,
    ):
        return sync
    recorded, ended = found.ledger.record(
        sync,
        state=seen.state,
        error=seen.error,
        raw_runs=seen.raw_runs,
        transform_run_id=seen.transform_run_id,
    )
    if ended:
        _log.info(
            "sync_finished",
            sync_id=sync.id,
            client_id=sync.client_id,
            state=recorded.state,
            error=recorded.error,
        )
        found.metrics.sync_finished(recorded)
    return recorded


def _launch(found: Services, sync: Sync) -> Sync:
    """Register the client with Dagster and launch the sync's raw runs; a sync Dagster did not
    take is forgotten, and the request answers 503 (try again) or 502 (Dagster said no)."""
    try:
        if found.orchestrator.register_client(sync.client_id):
            found.registry.mark_partition_registered(sync.client_id)
        runs = found.orchestrator.launch_sync(sync)
    except DagsterUnavailable as exc:
        found.ledger.discard(sync.id)
        raise ApiError(
            503,
            "dagster_unavailable",
            f"{exc}. Nothing was started: retry the request later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    except DagsterRefused as exc:
        found.ledger.discard(sync.id)
        raise ApiError(
            502, "dagster_refused", f"{exc}. Nothing was started for this sync"
        ) from None
    recorded, _ = found.ledger.record(sync, state="extracting", raw_runs=runs)
    return recorded


def sync_out(found: Services, sync: Sync, reused: Reuse = "created") -> SyncOut:
    url = found.orchestrator.graphql.run_url
    return SyncOut(
        id=sync.id,
        client_id=sync.client_id,
        state=sync.state,
        sources=sync.sources,
        start_date=sync.start_date,
        end_date=sync.end_date,
        full_refresh=sync.full_refresh,
        reused=None if reused == "created" else reused,
        raw_runs={s: RunLink(run_id=r, url=url(r)) for s, r in sorted(sync.raw_runs.items())},
        transform_run=RunLink(run_id=sync.transform_run_id, url=url(sync.transform_run_id))
        if sync.transform_run_id
        else None,
        error=sync.error,
        created_at=sync.created_at,
        updated_at=sync.updated_at,
        finished_at=sync.finished_at,
    )


@router.post(
    "/integrations/{client_id}/sync",
    status_code=202,
    response_model=SyncOut,
    responses={
        **error_responses(401, 403, 404, 409, 422, 502, 503),
        200: {
            "model": SyncOut,
            "description": "An existing sync: the same "
            "Idempotency-Key, or one already running for the client.",
        },
    },
)
def start_sync(
    client_id: ClientIdPath,
    body: SyncCreate,
    request: Request,
    response: Response,
    found: Found,
    principal: Annotated[Principal, Depends(require("syncs:write"))],
    idempotency_key: IdempotencyKey = None,
) -> SyncOut:
    """Sync a client's sources for a day range: raw runs per source, launched now; Dagster's
    automation (`automation_sensor`) then builds the dbt models from what landed.

    One sync per client at a time: while one is queued or running, this returns it (200,
    `reused: already_running`) instead of starting another. Dagster unreachable: 503 with
    `Retry-After`; Dagster refusing the runs: 502. Either way no sync is kept.
    """
    client = visible_client(found, principal, client_id, request)
    if not client.active:
        raise ClientInactive(client_id)
    try:
        plan = plan_sync(
            client, body.sources, body.start_date, body.end_date, today=datetime.now(UTC).date()
        )
        as_sent = json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
        asked = SyncRequest(
            sources=plan.sources,
            start_date=plan.start_date,
            end_date=plan.end_date,
            full_refresh=body.full_refresh,
            idempotency_key=idempotency_key,
            request_sha256=hashlib.sha256(as_sent).hexdigest(),
        )
        opened = found.ledger.open(client_id, asked)
        if opened.reused == "already_running":
            running = current(found, opened.sync)
            if running.active:
                opened = Opened(running, "already_running")
            else:  # it had ended, unread until now: this request starts the next one
                opened = found.ledger.open(client_id, asked)
    except StoreError:
        found.metrics.sync_requests.labels("rejected").inc()
        raise
    result = {
        "created": "created",
        "idempotency_key": "idempotent_replay",
        "already_running": "already_running",
    }[opened.reused]
    if opened.reused == "created":
        try:
            sync = _launch(found, opened.sync)
        except ApiError:
            found.metrics.sync_requests.labels("rejected").inc()
            raise
    else:
        # already_running was read from Dagster above; an idempotent replay is read now
        sync = opened.sync if opened.reused == "already_running" else current(found, opened.sync)
        response.status_code = 200
    found.metrics.sync_requests.labels(result).inc()
    response.headers["Location"] = f"/integrations/{client_id}/syncs/{sync.id}"
    return sync_out(found, sync, opened.reused)


@router.get(
    "/integrations/{client_id}/syncs/{sync_id}",
    response_model=SyncOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_sync(
    client_id: ClientIdPath,
    sync_id: SyncIdPath,
    request: Request,
    found: Found,
    principal: Annotated[Principal, Depends(require("status:read"))],
) -> SyncOut:
    visible_client(found, principal, client_id, request)
    sync = found.ledger.get(sync_id)
    if sync is None or sync.client_id != client_id:
        raise ApiError(
            404,
            "sync_not_found",
            f"client {client_id!r} has no sync {sync_id!r}; "
            f"GET /integrations/{client_id}/status shows its latest",
        )
    return sync_out(found, current(found, sync))


def _syncable_sources(client: Client, latest: Sync | None) -> list[str]:
    sources = (
        set(source_variables()) if client.credentials_from_environment else set(client.credentials)
    )
    return sorted(sources | set(latest.sources if latest else []))


def _stage_fields(found: Services, stage: StageStatus) -> dict[str, object]:
    url = found.orchestrator.graphql.run_url
    error = stage.last_error
    return {
        "state": stage.state,
        "run_id": stage.run_id,
        "run_url": url(stage.run_id) if stage.run_id else None,
        "run_started_at": stage.run_started_at,
        "run_ended_at": stage.run_ended_at,
        "last_error": LastErrorOut(
            message=error.message, run_id=error.run_id, run_url=url(error.run_id), at=error.at
        )
        if error
        else None,
        "freshness": stage.freshness,
    }


@router.get(
    "/integrations/{client_id}/status",
    response_model=StatusOut,
    responses=error_responses(401, 403, 404, 422),
)
def client_status(
    client_id: ClientIdPath,
    request: Request,
    found: Found,
    principal: Annotated[Principal, Depends(require("status:read"))],
) -> StatusOut:
    """Per source: state, latest run (with a link to the Dagster UI), records, retries, 429s,
    dead letters, the last error in plain words and when each asset last materialized."""
    client = visible_client(found, principal, client_id, request)
    latest = found.ledger.latest(client_id)
    if latest is not None:
        latest = current(found, latest)
    sources = _syncable_sources(client, latest)
    try:
        runs = found.status.client_runs(client_id)
        stages = {s: found.status.source_status(runs, s) for s in sources}
        transform = found.status.transform_status(sources)
        dagster_error = None
    except (DagsterUnavailable, DagsterRefused) as exc:
        stages = {s: StageStatus("unknown") for s in sources}
        transform, dagster_error = StageStatus("unknown"), str(exc)
    return StatusOut(
        client_id=client_id,
        sync=sync_out(found, latest) if latest else None,
        sources=[
            SourceStatusOut(
                source=source,
                **_stage_fields(found, stage),
                records=stage.figures.get("records"),
                rows_loaded=stage.figures.get("rows_loaded"),
                retries=stage.figures.get("retries"),
                throttled_429s=stage.figures.get("throttled_429s"),
                dead_letters=stage.figures.get("dead_letters"),
            )
            for source, stage in stages.items()
        ],
        transform=StageOut(**_stage_fields(found, transform)),
        dagster_error=dagster_error,
    )
