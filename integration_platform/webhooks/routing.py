"""Places a verified event: its id and type, the endpoint it updates, and the partition it lands in.

The spec's `webhooks.routes` maps an event type to an endpoint; the object found at
`object_path` is one record of that endpoint, and the UTC day of the endpoint's
`partitions.field` is its partition (the same day a pull of that partition would fetch it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson

from integration_platform.extraction.windows import UNPARTITIONED, parse_instant
from integration_platform.specs.models import SourceSpec, WebhookSpec


class WebhookConfigError(ValueError):
    """A spec whose webhooks cannot be received: says which source and what to change."""


class EventRejected(Exception):
    """A verified request whose body cannot be used; `reason` goes to the rejection table."""

    def __init__(self, status: int, reason: str, detail: str, event_id: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.event_id = status, reason, detail, event_id


class FieldPath:
    """A dotted path (`data.object`, `created`) split once, read with plain lookups.

    The receiver reads four of these per request; parsing them each time cost more than
    verifying the signature.
    """

    def __init__(self, path: str, where: str) -> None:
        if any(c in path for c in "[]*"):
            raise WebhookConfigError(
                f"{where}: {path!r} must be a plain dotted path "
                "(e.g. data.object) to be read from pushed events"
            )
        self.path = path
        self.keys = [key for key in path.split(".") if key]

    def read(self, node: Any) -> Any:
        """The value at the path; raises KeyError naming the missing step."""
        for key in self.keys:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise KeyError(f"no {key!r} on the way to {self.path!r}")
        return node


@dataclass(frozen=True)
class RoutedEvent:
    event_id: str
    event_type: str
    endpoint: str | None  # None: a type the spec does not route (acknowledged, not stored)
    partition_key: str | None


class EventRouter:
    """One source's routing rules, checked once when the receiver starts."""

    def __init__(self, spec: SourceSpec) -> None:
        if spec.webhooks is None:
            raise WebhookConfigError(f"source {spec.source!r} declares no webhooks")
        self.spec = spec
        self.webhooks: WebhookSpec = spec.webhooks
        where = f"{spec.source}: webhooks"
        self._event_id = FieldPath(self.webhooks.event_id_path, where)
        self._event_type = FieldPath(self.webhooks.event_type_path, where)
        self._object = FieldPath(self.webhooks.object_path, where)
        self._partition_fields: dict[str, FieldPath | None] = {}
        for event_type, endpoint in self.webhooks.routes.items():
            partitions = spec.endpoints[endpoint].partitions
            if partitions.type == "daily" and partitions.field is None:
                raise WebhookConfigError(
                    f"{spec.source}: webhook events of type {event_type!r} go to endpoint "
                    f"{endpoint!r}, which is partitioned by day, but its `partitions` has no "
                    "`field`: name the record field whose UTC day is the partition "
                    "(e.g. `field: created`)"
                )
            self._partition_fields[endpoint] = (
                FieldPath(partitions.field, f"{spec.source}.{endpoint}: partitions")
                if partitions.type == "daily" and partitions.field
                else None
            )

    def route(self, body: bytes) -> RoutedEvent:
        """Read a verified body; raise EventRejected when it is not an event we can place."""
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise EventRejected(400, "malformed_body", "the body is not JSON") from None
        event_id = self._scalar(event, self._event_id, "event id")
        event_type = self._scalar(event, self._event_type, "event type")
        endpoint = self.webhooks.routes.get(event_type)
        if endpoint is None:
            return RoutedEvent(event_id, event_type, None, None)
        record = self.record(event)
        if not isinstance(record, dict):
            raise EventRejected(
                400,
                "malformed_body",
                f"{self.webhooks.object_path!r} is not a JSON object",
                event_id,
            )
        return RoutedEvent(
            event_id, event_type, endpoint, self._partition_key(record, endpoint, event_id)
        )

    def record(self, event: Any) -> Any:
        """The API object inside a parsed event."""
        try:
            return self._object.read(event)
        except KeyError as exc:
            raise EventRejected(400, "malformed_body", f"no API object: {exc}") from None

    def _scalar(self, event: Any, path: FieldPath, what: str) -> str:
        try:
            value = path.read(event)
        except KeyError as exc:
            raise EventRejected(400, "malformed_body", f"no {what}: {exc}") from None
        if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
            raise EventRejected(
                400, "malformed_body", f"the {what} at {path.path!r} is not a string or a number"
            )
        return str(value)

    def _partition_key(self, record: dict[str, Any], endpoint: str, event_id: str) -> str:
        field = self._partition_fields[endpoint]
        if field is None:
            return UNPARTITIONED
        try:
            instant = parse_instant(field.read(record))
        except KeyError:
            instant = None
        if instant is None:
            raise EventRejected(
                422,
                "unplaceable_record",
                f"the {endpoint} record has no readable {field.path!r} (ISO 8601 or epoch), "
                "so it cannot be placed in a daily partition",
                event_id,
            )
        return instant.astimezone(UTC).date().isoformat()
