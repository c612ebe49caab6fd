"""The client store: integration clients, their encrypted credentials, API keys and syncs.

Dagster runs read a client's credentials through `clients.credentials.StoredCredentials`, the
`CredentialsProvider` (specs.credentials) that the definitions hand to each source's resource.
"""
