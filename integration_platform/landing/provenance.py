"""What produced a landed page of records: a pull's request, a webhook delivery, a stream batch.

Every manifest line carries one. A pulled page is the response exactly as the API sent it, its
records where the endpoint's records rule says; a pushed page (webhooks, streams) is the list of
records itself. A pull's `next_request` is the checkpoint a resumed run continues from.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Provenance(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    holds_response: ClassVar[bool] = False
    """True: the page is a response body (records located by the endpoint's records rule);
    False: the page is the JSON list of the records."""


class Pull(_Provenance):
    """A response an API served: the request that fetched it and the request that continues
    after it (None: it was the last), as the HTTP engine's checkpoints (plain JSON)."""

    holds_response: ClassVar[bool] = True
    kind: Literal["pull"] = "pull"
    request: dict[str, Any]
    next_request: dict[str, Any] | None = None
    graphql_errors: list[Any] = Field(default_factory=list)


class WebhookDelivery(_Provenance):
    """Webhook events of one source, drained from the inbox: arrival numbers first..last."""

    kind: Literal["webhook"] = "webhook"
    route: str
    first_seq: int
    last_seq: int


class StreamBatch(_Provenance):
    """A micro-batch of a stream's events, first..last by event id ("" when the server sends
    none)."""

    kind: Literal["stream"] = "stream"
    stream: str
    first_event_id: str
    last_event_id: str


Provenance = Annotated[Pull | WebhookDelivery | StreamBatch, Field(discriminator="kind")]
