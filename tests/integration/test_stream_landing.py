"""The stream consumer lands its batches where `LANDING_URL` says, as the raw assets do: a folder
of its own, or S3-compatible object storage (moto's server on loopback), never the data folder's
`landing/` then.

`integration-platform streams consume --max-events` runs as its own process against a private
sandbox, with the variables a deployment would give it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
from s3fs import S3FileSystem

from integration_platform.streams.raw_sink import STREAMS_FOLDER
from integration_platform_sandbox.server import Sandbox
from tests.landing_s3 import S3Server, s3_env, s3_server

__all__ = ["s3_env", "s3_server"]  # fixtures

BIN = Path(sys.executable).parent
EVENTS = 40


def consume(sandbox: Sandbox, data: Path, environment: dict[str, str]) -> list[dict[str, object]]:
    """`streams consume` of analytics' `usage` until EVENTS events are in raw; its summary."""
    done = subprocess.run(
        [
            str(BIN / "integration-platform"),
            "streams",
            "consume",
            "--source",
            "analytics",
            "--stream",
            "usage",
            "--max-events",
            str(EVENTS),
        ],
        env={
            **os.environ,
            **environment,
            "ANALYTICS_BASE_URL": sandbox.urls["analytics"],
            "INTEGRATION_PLATFORM_DATA_DIR": str(data),
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary: list[dict[str, object]] = json.loads(done.stdout)
    return summary


def raw_rows(data: Path) -> int:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as connection:
        row = connection.execute('SELECT count(*) FROM raw."analytics__events"').fetchone()
    return int(row[0]) if row else 0


def test_stream_batches_land_under_landing_url_when_it_names_another_folder(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "shared-landing"
    consume(make_sandbox(), data, {"LANDING_URL": str(elsewhere)})

    batches = sorted((elsewhere / STREAMS_FOLDER / "analytics" / "usage").glob("*/*/COMPLETE"))
    assert batches, f"nothing landed under {elsewhere}"
    assert not (data / "landing").exists()
    assert raw_rows(data) >= EVENTS


def test_stream_batches_land_on_object_storage_when_landing_url_names_a_bucket(
    make_sandbox: Callable[..., Sandbox], s3_env: S3Server, tmp_path: Path
) -> None:
    bucket = s3_env.create_bucket(f"streams-{uuid.uuid4().hex[:12]}")
    data = tmp_path / "data"
    consume(make_sandbox(), data, {**s3_env.env(), "LANDING_URL": f"s3://{bucket}/prod"})

    s3 = S3FileSystem(anon=False, client_kwargs={"endpoint_url": s3_env.endpoint})
    landed = s3.find(f"{bucket}/prod/{STREAMS_FOLDER}/analytics/usage")
    assert [key for key in landed if key.endswith("/COMPLETE")], landed
    assert not (data / "landing").exists()
    assert raw_rows(data) >= EVENTS
