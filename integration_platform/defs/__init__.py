"""The code location's definitions, one module or component per concern (dg's `defs` folder):
sources/ (the source specs as a Component), transform (dbt), checks, automation, resources,
execution. `integration_platform.definitions` loads them all."""
