"""The Integration Platform API: clients, syncs, status, health, metrics and the access layer."""
