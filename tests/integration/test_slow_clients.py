"""Slow clients (slowloris) are cut off by the receiver while everyone else is served.

Raw sockets against the real receiver (uvicorn on a free loopback port) with short limits, so
each case takes a second or two: the limits are settings, the behaviour is what is tested.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from integration_platform.serving import ClientLimits
from integration_platform.webhooks.app import create_receiver_app
from integration_platform.webhooks.inbox import Inbox
from integration_platform.webhooks.server import ReceiverServer
from tests.integration.test_webhooks import ROUTE, billing_spec, invoice_event, signed

LIMITS = ClientLimits(headers_seconds=1.0, body_seconds=1.5, max_head_bytes=16 * 1024)
SLACK = 2.0  # a loaded 2-core machine may be late by this much
HEAD = (f"POST {ROUTE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n").encode()


@dataclass
class Served:
    url: str
    port: int
    inbox_path: Path


@pytest.fixture
def secret() -> str:
    webhooks = billing_spec().webhooks
    assert webhooks is not None
    return webhooks.secret.get_secret_value()


@contextmanager
def serving(tmp_path: Path, limits: ClientLimits) -> Iterator[Served]:
    inbox = tmp_path / "inbox.sqlite"
    app = create_receiver_app({"billing": billing_spec()}, inbox)
    with ReceiverServer(app, port=0, limits=limits) as server:
        yield Served(server.url, server.port, inbox)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path, LIMITS) as served:
        yield served


@dataclass
class Outcome:
    seconds: float  # from the first byte sent until the server answered or hung up
    answer: bytes  # what the server sent before closing (b"" when it just closed)
    closed: bool


def trickle(
    port: int, chunks: Iterable[bytes], interval: float, give_up_after: float = 15.0
) -> Outcome:
    """Send `chunks` one per `interval` until the server answers or closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        started = time.monotonic()
        answer = b""
        pending = iter(chunks)
        while time.monotonic() - started < give_up_after:
            chunk = next(pending, None)
            if chunk is not None:
                try:
                    sock.sendall(chunk)
                except OSError:  # reset by the server
                    return Outcome(time.monotonic() - started, answer, True)
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return Outcome(time.monotonic() - started, answer, True)
                if not data:
                    return Outcome(time.monotonic() - started, answer, True)
                answer += data
        return Outcome(time.monotonic() - started, answer, False)


def one_byte_at_a_time(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def endless_header() -> Iterator[bytes]:
    yield HEAD
    yield from one_byte_at_a_time(b"X-Slow: " + b"a" * 10_000)


def test_client_gets_408_and_is_cut_off_when_it_sends_its_headers_byte_by_byte(
    receiver: Served,
) -> None:
    outcome = trickle(receiver.port, endless_header(), interval=0.05)
    assert outcome.closed, "the server kept a client that never finished its headers"
    assert LIMITS.headers_seconds - 0.1 <= outcome.seconds <= LIMITS.headers_seconds + SLACK
    assert outcome.answer.startswith(b"HTTP/1.1 408 ")


def test_client_is_cut_off_when_it_connects_and_sends_nothing(receiver: Served) -> None:
    outcome = trickle(receiver.port, [], interval=0.05)
    assert outcome.closed
    assert outcome.seconds <= LIMITS.headers_seconds + SLACK


def test_client_is_cut_off_and_nothing_is_kept_when_it_trickles_a_declared_body(
    receiver: Served, secret: str
) -> None:
    body = invoice_event("evt_slow")
    head = HEAD + b"".join(
        f"{name}: {value}\r\n".encode()
        for name, value in signed(secret, body).items()
        if name != "content-type"
    )
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()
    outcome = trickle(receiver.port, [head, *one_byte_at_a_time(body)], interval=0.05)
    assert outcome.closed, "the server kept a client that never finished its body"
    assert LIMITS.body_seconds - 0.1 <= outcome.seconds <= LIMITS.body_seconds + SLACK
    with Inbox(receiver.inbox_path) as inbox:
        assert inbox.counts()["received"] == 0


def test_client_gets_431_when_its_headers_are_larger_than_the_limit(receiver: Served) -> None:
    huge = HEAD + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(64))
    outcome = trickle(receiver.port, [huge], interval=0.05)
    assert outcome.closed
    assert outcome.answer.startswith(b"HTTP/1.1 431 ")


def test_a_slow_client_within_the_limits_is_served_when_its_body_comes_in_pieces(
    receiver: Served, secret: str
) -> None:
    body = invoice_event("evt_patient")
    head = HEAD + b"".join(
        f"{name}: {value}\r\n".encode()
        for name, value in signed(secret, body).items()
        if name != "content-type"
    )
    head += f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    third = len(body) // 3
    pieces = [head, body[:third], body[third : 2 * third], body[2 * third :]]
    outcome = trickle(receiver.port, pieces, interval=0.25)
    assert outcome.answer.startswith(b"HTTP/1.1 200 "), outcome.answer[:200]


def test_other_clients_are_served_at_once_while_slow_clients_hold_connections(
    tmp_path: Path, secret: str
) -> None:
    # Slow clients held for 4 s: the fast one must be answered while they are all still
    # connected, and 4 s leaves a busy machine room for that.
    limits = ClientLimits(headers_seconds=4.0, body_seconds=4.0, max_head_bytes=16 * 1024)
    with serving(tmp_path, limits) as receiver:
        slow = [socket.create_connection(("127.0.0.1", receiver.port)) for _ in range(50)]
        try:
            for sock in slow:
                sock.sendall(HEAD + b"X-Slow: a")
            slow_since = time.monotonic()
            body = invoice_event("evt_fast")
            response = httpx.post(
                receiver.url + ROUTE, content=body, headers=signed(secret, body), timeout=30
            )
            assert response.status_code == 200
            # Every slow client still holds its connection: nothing was sent to it, not even
            # a close.
            readable, _, _ = select.select(slow, [], [], 0)
            assert readable == [], f"{len(readable)} slow clients were answered or cut off"
            assert time.monotonic() - slow_since < limits.headers_seconds
            # And every slow one is gone once the limit has passed.
            deadline = slow_since + limits.headers_seconds + SLACK
            for sock in slow:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                assert sock.recv(65536).startswith(b"HTTP/1.1 408 ")
        finally:
            for sock in slow:
                sock.close()


def test_kept_alive_connection_serves_a_second_request_when_both_arrive_in_time(
    receiver: Served, secret: str
) -> None:
    with httpx.Client(timeout=5) as client:
        for event_id in ("evt_a", "evt_b"):
            body = invoice_event(event_id)
            response = client.post(receiver.url + ROUTE, content=body, headers=signed(secret, body))
            assert response.status_code == 200
            time.sleep(LIMITS.headers_seconds * 0.6)  # idle, below uvicorn's keep-alive
        assert client.get(receiver.url + "/_health").status_code == 200


def test_limits_refuse_to_be_built_when_a_setting_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ClientLimits(headers_seconds=0)
