"""Runs of the main job outside the UI: raw for a client's days, then dbt, with progress."""
