"""The webhook receiver: verifies signatures, acknowledges into a durable inbox, deduplicates.

`signatures` checks a request came from the vendor, `routing` places a verified event in an
endpoint and a partition, `inbox` keeps it (SQLite, not the warehouse), `writer` commits
receipts in groups for the event loop, `app` is the ASGI application, `server` runs it, and
`drain` lands inbox batches in the raw tables through the same loader as pulled pages.
"""
