"""`python -m integration_platform.cli`: how the launcher starts its child processes."""

from integration_platform.cli import main

main()
