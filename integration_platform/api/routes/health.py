"""`/health` (the process is alive), `/health/ready` (it can do its work), `/metrics`."""

from __future__ import annotations

import duckdb
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from integration_platform.api.routes.clients import Found
from integration_platform.api.schemas import CheckOut, LiveOut, ReadyOut
from integration_platform.celery_workers import (
    BrokerUnreachableError,
    broker_address,
    check_broker,
)
from integration_platform.orchestration.dagster_graphql import DagsterUnavailable

router = APIRouter(tags=["health"])


@router.get("/health", response_model=LiveOut)
def live() -> LiveOut:
    return LiveOut(status="ok")


@router.get(
    "/health/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "A part is not ready: see checks."}},
)
def ready(found: Found) -> ReadyOut | JSONResponse:
    """Ready when the store answers, the Dagster webserver answers, the published warehouse
    copy (if one was published yet) opens and, in the production instance profile, Dagster's
    storage database answers and, where runs go to celery workers, their broker does."""
    checks = {"store": _store(found), "dagster": _dagster(found), "warehouse": _warehouse(found)}
    if found.dagster_storage is not None:
        checks["dagster_storage"] = _dagster_storage(found.dagster_storage)
    if found.celery_broker_url is not None:
        checks["celery_broker"] = _celery_broker(found.celery_broker_url)
    body = ReadyOut(
        status="ready" if all(c.ok for c in checks.values()) else "not_ready", checks=checks
    )
    if body.status == "ready":
        return body
    return JSONResponse(body.model_dump(), status_code=503)


def _store(found: Found) -> CheckOut:
    try:
        with found.registry.sessions() as session:
            session.execute(text("select 1"))
    except SQLAlchemyError as exc:
        return CheckOut(
            ok=False, detail=f"the client store does not answer: {exc.__class__.__name__}"
        )
    return CheckOut(ok=True, detail="the client store answers")


def _dagster_storage(engine: Engine) -> CheckOut:
    # Host, port and database only: the URL may hold a password.
    where = f"{engine.url.host}:{engine.url.port or 5432}/{engine.url.database}"
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except SQLAlchemyError as exc:
        return CheckOut(
            ok=False,
            detail=f"Dagster's storage database at {where} does not answer: "
            f"{exc.__class__.__name__}",
        )
    return CheckOut(ok=True, detail=f"Dagster's storage database at {where} answers")


def _celery_broker(url: str) -> CheckOut:
    # Host and port only (broker_address): the URL holds the broker's password.
    try:
        check_broker(url)  # a few seconds at most (BROKER_CHECK_TIMEOUT_SECONDS)
    except BrokerUnreachableError:
        return CheckOut(
            ok=False, detail=f"the celery broker at {broker_address(url)} does not answer"
        )
    return CheckOut(ok=True, detail=f"the celery broker at {broker_address(url)} answers")


def _dagster(found: Found) -> CheckOut:
    try:
        found.orchestrator.graphql.check_reachable()
    except DagsterUnavailable as exc:
        return CheckOut(ok=False, detail=str(exc))
    return CheckOut(
        ok=True, detail=f"the Dagster webserver at {found.orchestrator.graphql.url} answers"
    )


def _warehouse(found: Found) -> CheckOut:
    warehouse = found.customers.warehouse
    try:
        with warehouse.cursor() as cursor:
            if cursor is None:
                return CheckOut(ok=True, detail=f"nothing published yet at {warehouse.path}")
            cursor.execute("select 1")
    except (duckdb.Error, OSError) as exc:
        return CheckOut(
            ok=False, detail=f"the published copy {warehouse.path} cannot be read: {exc}"
        )
    return CheckOut(ok=True, detail=f"the published copy {warehouse.path} opens read-only")


@router.get("/metrics", include_in_schema=False)
def metrics(found: Found) -> Response:
    return Response(found.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
