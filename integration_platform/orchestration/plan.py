"""What a sync request means: which sources and which days, checked against the specs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from integration_platform.clients.errors import InvalidRequest, Problem
from integration_platform.clients.registry import Client
from integration_platform.clients.variables import source_variables
from integration_platform.specs.loader import load_specs

MAX_DAYS_PER_SYNC = 366


@dataclass(frozen=True)
class SyncPlan:
    sources: tuple[str, ...]
    start_date: date
    end_date: date


@cache
def first_partition_day(source: str) -> date | None:
    """The earliest daily partition of the source's endpoints (None: none is partitioned)."""
    spec = load_specs().get(source)
    days = (
        [
            e.partitions.start
            for e in spec.endpoints.values()
            if e.is_partitioned and e.partitions.start
        ]
        if spec
        else []
    )
    return min(days) if days else None


def plan_sync(
    client: Client, sources: list[str] | None, start: date | None, end: date | None, *, today: date
) -> SyncPlan:
    """The sync to run, or InvalidRequest naming every field that is wrong and why."""
    known = sorted(source_variables())
    problems: list[Problem] = []
    if sources is None:
        chosen = known if client.credentials_from_environment else sorted(client.credentials)
        if not chosen:
            problems.append(
                Problem(
                    "sources",
                    f"client {client.id!r} has no credentials for "
                    f"any source: PATCH /clients/{client.id} with credentials "
                    "first, or name the sources",
                )
            )
    else:
        chosen = list(dict.fromkeys(sources))
        for index, source in enumerate(sources):
            if source not in known:
                problems.append(
                    Problem(
                        f"sources[{index}]",
                        f"unknown source {source!r}; known sources: {', '.join(known)}",
                    )
                )
            elif not client.credentials_from_environment and source not in client.credentials:
                problems.append(
                    Problem(
                        f"sources[{index}]",
                        (
                            f"client {client.id!r} has no credentials for {source}: PATCH "
                            f"/clients/{client.id} with credentials.{source} first"
                        ),
                    )
                )
        if not sources:
            problems.append(
                Problem(
                    "sources",
                    "name at least one source, or leave the field "
                    "out to sync every source the client has credentials for",
                )
            )
    last_day = today - timedelta(days=1)
    end_date = end or last_day
    start_date = start or end_date
    if end_date > last_day:
        problems.append(
            Problem(
                "end_date",
                f"{end_date} has not ended yet: the last complete (UTC) day is {last_day}",
            )
        )
    if start_date > end_date:
        problems.append(Problem("start_date", f"{start_date} is after end_date {end_date}"))
    elif (end_date - start_date).days + 1 > MAX_DAYS_PER_SYNC:
        problems.append(
            Problem(
                "start_date",
                f"at most {MAX_DAYS_PER_SYNC} days per sync; split the range into several syncs",
            )
        )
    firsts = [d for d in (first_partition_day(s) for s in chosen if s in known) if d]
    if firsts and start_date < min(firsts):
        problems.append(
            Problem(
                "start_date",
                f"{start_date} is before the first partition ({min(firsts)}) of the chosen sources",
            )
        )
    if problems:
        raise InvalidRequest(problems)
    return SyncPlan(tuple(chosen), start_date, end_date)
