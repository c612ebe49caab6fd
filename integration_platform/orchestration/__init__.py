"""Syncs as Dagster runs: launching them (orchestrator), reading them back (runs, status)."""
