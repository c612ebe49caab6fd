"""The client store: integration clients, their encrypted credentials, API keys and syncs.

Dagster runs read a client's credentials with
`integration_platform.clients.credentials.credentials_for(client_id, source)`. (Not imported
here: the raw layer imports `clients.slugs`, and the store imports the raw layer.)
"""
