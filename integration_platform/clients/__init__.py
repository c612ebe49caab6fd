"""The client store: integration clients, their encrypted credentials, API keys and syncs."""
