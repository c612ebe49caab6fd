"""Sandbox analytics vendor (being written)."""

from collections.abc import Iterator

from starlette.types import ASGIApp

from integration_platform.sandbox.chaos import ChaosEngine
from integration_platform.sandbox.vendors.common import TruthRow
from integration_platform.sandbox.world import World


def create_app(world: World, engine: ChaosEngine) -> ASGIApp:
    raise NotImplementedError("analytics")


def ground_truth(world: World) -> Iterator[TruthRow]:
    raise NotImplementedError("analytics")
