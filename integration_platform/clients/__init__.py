"""The client store: integration clients, their encrypted credentials, API keys and syncs.

Dagster runs read a client's credentials with `credentials_for(client_id, source)`.
"""

from integration_platform.clients.credentials import credentials_for

__all__ = ["credentials_for"]
