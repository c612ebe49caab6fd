"""What runs without a person: schedules, sensors (webhook inbox, alerts) and reconciliation."""
