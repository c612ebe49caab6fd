"""Push sources over Server-Sent Events: read a stream, buffer it (bounded), load it into raw.

`reader` keeps one SSE connection alive (auth, Last-Event-ID, `retry:`, backoff); `consumer`
cuts what it reads into micro-batches; `raw_sink` lands each batch and loads it into
`raw.<source>__<endpoint>` with the stream's checkpoint in the same transaction; `service`
runs every stream of the specs as one long-lived process (`integration-platform streams consume`).
"""
