"""One router per resource: clients, syncs and status, customers, health and metrics."""
