"""Our Dagster Components: the types a `defs.yaml` under integration_platform/defs/ can name
(`dg list components` lists them)."""

from integration_platform.components.sources import SourceSpecsComponent

__all__ = ["SourceSpecsComponent"]
