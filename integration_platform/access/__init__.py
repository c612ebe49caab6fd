"""The access layer: a client's consolidated data, read from the published warehouse copy."""
