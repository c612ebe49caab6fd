"""The sandbox support vendor over real HTTP: Relay paging, nesting, query limits and chaos."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest

from integration_platform_sandbox.chaos import ChaosSettings
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.vendors import support
from integration_platform_sandbox.vendors.support import (
    CUSTOMER_PREFIX,
    TICKET_PREFIX,
    ticket_index,
)

CUSTOMERS_PAGE = """
query Customers($after: String, $since: String, $before: String) {
  customers(first: 100, after: $after, updatedSince: $since, updatedBefore: $before) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name email emailAddress updatedAt } }
  }
}"""

TICKETS_PAGE = """
query Tickets($after: String, $since: String, $before: String) {
  tickets(first: 100, after: $after, updatedSince: $since, updatedBefore: $before) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id updatedAt comments(first: 0) { totalCount } } }
  }
}"""

# tickets → customer → tickets → customer → tickets → customer → id: 7 levels.
TOO_DEEP = """{
  tickets(first: 1) { edges { node { customer {
    tickets(first: 1) { edges { node { customer {
      tickets(first: 1) { edges { node { customer { id } } } }
    } } } }
  } } } }
}"""

# 100 + 100·100 + 100·100·100 nodes.
TOO_COSTLY = """{
  customers(first: 100) { edges { node {
    tickets(first: 100) { edges { node {
      comments(first: 100) { edges { node { id } } }
    } } }
  } } }
}"""

# The same query, hidden behind variables and fragments.
TOO_COSTLY_BY_FRAGMENTS = """
query Costly($n: Int) { customers(first: $n) { ...CustomerTickets } }
fragment CustomerTickets on CustomerConnection {
  edges { node { tickets(first: $n) { edges { node { ...TicketComments } } } } }
}
fragment TicketComments on Ticket { comments(first: $n) { edges { node { id } } } }
"""


class SupportAPI:
    """The support vendor's /graphql endpoint, called with the sandbox's token."""

    def __init__(self, client: httpx.Client, sandbox: Sandbox) -> None:
        self.client = client
        self.url = f"{sandbox.urls['support']}/graphql"
        self.admin = f"{sandbox.urls['support']}/_sandbox"
        self.token = sandbox.world.credentials.support_api_token

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.client.post(
            self.url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.token}"} if headers is None else headers,
        )

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(query, variables)
        body = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body["errors"]
        result: dict[str, Any] = body["data"]
        return result

    def all_pages(
        self, query: str, field: str, variables: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Every node of a top-level connection, following endCursor; and its totalCount."""
        nodes: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(100):
            page = self.data(query, {**(variables or {}), "after": after})[field]
            nodes += [edge["node"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return nodes, page["totalCount"]
            after = page["pageInfo"]["endCursor"]
        raise AssertionError("paging did not finish within 100 pages")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.client.get(f"{self.admin}/stats").json()
        return result


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


@pytest.fixture
def api(client: httpx.Client, sandbox: Sandbox) -> SupportAPI:
    return SupportAPI(client, sandbox)


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def test_paging_customers_returns_the_ground_truth_once_when_following_end_cursors(
    api: SupportAPI, sandbox: Sandbox
) -> None:
    nodes, total = api.all_pages(CUSTOMERS_PAGE, "customers")

    ids = [node["id"] for node in nodes]
    assert len(ids) == total == len(set(ids))
    truth_csv = csv.DictReader(io.StringIO(api.client.get(f"{api.admin}/ground-truth").text))
    served_truth = {row["record_id"] for row in truth_csv if row["endpoint"] == "customers"}
    module_truth = {row.record_id for row in support.ground_truth(sandbox.world)}
    assert set(ids) == served_truth == module_truth
    assert len(ids) == len(sandbox.world.roster("support"))
    updated = [_at(node["updatedAt"]) for node in nodes]
    assert updated == sorted(updated)


def test_customer_ticket_pages_follow_the_child_index_when_paging_a_customers_tickets(
    api: SupportAPI, sandbox: Sandbox
) -> None:
    world = sandbox.world
    index = ticket_index(world)
    # Three tickets in pages of two: the first page must still say there is a next one.
    position = next(p for p in range(index.parents) if len(index.children_of(p)) == 3)
    customer_id = world.record_id(CUSTOMER_PREFIX, position)
    query = """
    query($id: ID!, $after: String) { customer(id: $id) {
      tickets(first: 2, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id customer { id } } }
      }
    } }"""

    seen: list[dict[str, Any]] = []
    after, pages = None, 0
    while True:
        page = api.data(query, {"id": customer_id, "after": after})["customer"]["tickets"]
        seen += [edge["node"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    expected = [world.record_id(TICKET_PREFIX, t) for t in index.children_of(position)]
    assert [ticket["id"] for ticket in seen] == expected
    assert page["totalCount"] == len(expected)
    assert pages == 2
    assert {ticket["customer"]["id"] for ticket in seen} == {customer_id}


def test_nested_customers_tickets_and_comments_resolve_when_the_query_is_within_limits(
    api: SupportAPI,
) -> None:
    query = """{
      customers(first: 10) { edges { node { id
        tickets(first: 10) { totalCount edges { node { id status customer { id }
          comments(first: 10) { totalCount edges { node { id author body public createdAt } } }
        } } }
      } } }
    }"""

    customers = [edge["node"] for edge in api.data(query)["customers"]["edges"]]

    assert len(customers) == 10
    comment_ids: list[str] = []
    for customer in customers:
        tickets = [edge["node"] for edge in customer["tickets"]["edges"]]
        assert len(tickets) == min(10, customer["tickets"]["totalCount"])
        for ticket in tickets:
            assert ticket["customer"]["id"] == customer["id"]
            assert ticket["status"] in ("open", "pending", "solved", "closed")
            comments = [edge["node"] for edge in ticket["comments"]["edges"]]
            assert len(comments) == ticket["comments"]["totalCount"] <= 4
            times = [_at(comment["createdAt"]) for comment in comments]
            assert times == sorted(times)
            assert all(comment["public"] for comment in comments[:1])
            comment_ids += [comment["id"] for comment in comments]
    assert comment_ids, "no ticket of the first ten customers has comments"
    assert len(comment_ids) == len(set(comment_ids))


def test_paging_tickets_covers_every_ticket_once_when_following_end_cursors(
    api: SupportAPI, sandbox: Sandbox
) -> None:
    nodes, total = api.all_pages(TICKETS_PAGE, "tickets")

    ids = [node["id"] for node in nodes]
    customers = len(sandbox.world.roster("support"))
    assert len(ids) == total == len(set(ids)) == round(1.5 * customers)
    assert set(ids) == {sandbox.world.record_id(TICKET_PREFIX, t) for t in range(total)}
    updated = [_at(node["updatedAt"]) for node in nodes]
    assert updated == sorted(updated)
    # Every ticket belongs to exactly one customer's connection.
    per_customer, _ = api.all_pages(
        """query($after: String) { customers(first: 100, after: $after)
        { pageInfo { hasNextPage endCursor } totalCount
          edges { node { tickets(first: 0) { totalCount } } } } }""",
        "customers",
    )
    assert sum(customer["tickets"]["totalCount"] for customer in per_customer) == total
    counts = api.stats()["counts"]
    assert counts == {
        "customers": customers,
        "tickets": total,
        "comments": sum(node["comments"]["totalCount"] for node in nodes),
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": "Basic c2FuZGJveDpzZWNyZXQ="},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong", "basic", "empty"],
)
def test_request_is_refused_with_401_when_the_token_is_missing_or_wrong(
    api: SupportAPI, headers: dict[str, str]
) -> None:
    response = api.post("{ customers { totalCount } }", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "data" not in response.json()


def test_query_is_refused_with_400_naming_the_depth_limit_when_it_nests_too_deep(
    api: SupportAPI,
) -> None:
    before = api.stats()["rejected_queries"]["depth"]

    response = api.post(TOO_DEEP)

    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert "depth limit of 6" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["depth"] == 7
    assert api.stats()["rejected_queries"]["depth"] == before + 1


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (TOO_COSTLY, {}),
        (TOO_COSTLY_BY_FRAGMENTS, {"n": 100}),
    ],
    ids=["literal", "fragments-and-variables"],
)
def test_query_is_refused_with_400_naming_the_cost_limit_when_nested_firsts_multiply_past_it(
    api: SupportAPI, query: str, variables: dict[str, Any]
) -> None:
    before = api.stats()["rejected_queries"]["cost"]

    response = api.post(query, variables)

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert "cost limit of 5000" in error["message"]
    assert error["extensions"]["cost"] == 100 + 100 * 100 + 100 * 100 * 100
    assert api.stats()["rejected_queries"]["cost"] == before + 1


def test_query_is_refused_with_400_when_it_does_not_validate(api: SupportAPI) -> None:
    response = api.post("{ customers { edges { node { shoeSize } } } }")

    assert response.status_code == 400
    assert "shoeSize" in response.json()["errors"][0]["message"]


def test_graphql_error_names_the_range_when_first_is_above_100(api: SupportAPI) -> None:
    response = api.post("{ customers(first: 101) { totalCount } }")

    body = response.json()
    assert response.status_code == 200
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["customers"]
    assert "0..100" in body["errors"][0]["message"]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "dGlja2V0czoz"], ids=["garbage", "tickets"])
def test_graphql_error_rejects_the_cursor_when_after_was_not_issued_by_that_connection(
    api: SupportAPI, cursor: str
) -> None:
    # dGlja2V0czoz is a cursor of the top-level tickets connection, not of customers.
    response = api.post("query($c: String) { customers(after: $c) { totalCount } }", {"c": cursor})

    body = response.json()
    assert response.status_code == 200
    assert body["errors"][0]["path"] == ["customers"]
    assert "not a cursor this connection issued" in body["errors"][0]["message"]


def test_failed_comments_come_back_as_200_with_data_and_errors_when_partial_errors_are_on(
    api: SupportAPI, chaos: Callable[..., None]
) -> None:
    chaos("support", settings=ChaosSettings(graphql_partial_errors=0.3))
    query = """{ tickets(first: 50) { edges { node { id subject
                  comments(first: 5) { totalCount } } } } }"""

    responses = [api.post(query), api.post(query)]

    failed_each_time = []
    for response in responses:
        assert response.status_code == 200
        body = response.json()
        tickets = [edge["node"] for edge in body["data"]["tickets"]["edges"]]
        assert len(tickets) == 50
        assert all(ticket["subject"] for ticket in tickets)
        failed = {i for i, ticket in enumerate(tickets) if ticket["comments"] is None}
        assert 0 < len(failed) < 50
        assert {tuple(error["path"]) for error in body["errors"]} == {
            ("tickets", "edges", i, "node", "comments") for i in failed
        }
        assert all("comments service unavailable" in error["message"] for error in body["errors"])
        failed_each_time.append(failed)
    assert failed_each_time[0] == failed_each_time[1], "a retry must not heal a broken ticket"


def test_end_cursor_repeats_the_after_cursor_when_the_repeat_cursor_knob_hits_that_page(
    api: SupportAPI, chaos: Callable[..., None]
) -> None:
    chaos("support", settings=ChaosSettings(repeat_cursor_at_page=2))
    query = """query($after: String) { customers(first: 50, after: $after) {
                 pageInfo { hasNextPage endCursor } edges { node { id } } } }"""

    first = api.data(query)["customers"]
    second = api.data(query, {"after": first["pageInfo"]["endCursor"]})["customers"]

    assert second["pageInfo"] == {"hasNextPage": True, "endCursor": first["pageInfo"]["endCursor"]}
    first_ids = {edge["node"]["id"] for edge in first["edges"]}
    assert first_ids.isdisjoint(edge["node"]["id"] for edge in second["edges"])


@pytest.mark.parametrize(
    ("query", "field"),
    [(CUSTOMERS_PAGE, "customers"), (TICKETS_PAGE, "tickets")],
    ids=["customers", "tickets"],
)
def test_updated_filters_return_only_records_updated_in_the_window_when_given(
    api: SupportAPI, query: str, field: str
) -> None:
    since, before = "2025-04-01T00:00:00Z", "2025-09-01T00:00:00Z"
    everything, _ = api.all_pages(query, field)

    window, total = api.all_pages(query, field, {"since": since, "before": before})

    expected = [
        node["id"] for node in everything if _at(since) <= _at(node["updatedAt"]) < _at(before)
    ]
    assert 0 < len(expected) < len(everything)
    assert [node["id"] for node in window] == expected
    assert total == len(expected)


def test_email_is_renamed_email_address_when_schema_drift_starts(
    api: SupportAPI, chaos: Callable[..., None]
) -> None:
    plain = {node["id"]: node for node in api.all_pages(CUSTOMERS_PAGE, "customers")[0]}
    chaos("support", settings=ChaosSettings(schema_drift_from=date(2025, 7, 1)))

    drifted, _ = api.all_pages(CUSTOMERS_PAGE, "customers")

    moved = 0
    for node in drifted:
        original = plain[node["id"]]["email"]
        if _at(node["updatedAt"]).date() >= date(2025, 7, 1):
            assert (node["email"], node["emailAddress"]) == (None, original)
            moved += 1
        else:
            assert (node["email"], node["emailAddress"]) == (original, None)
    assert 0 < moved < len(drifted)


def test_unknown_customer_id_resolves_to_null_when_looked_up(api: SupportAPI) -> None:
    known = api.data("{ customers(first: 1) { edges { node { id name } } } }")
    customer = known["customers"]["edges"][0]["node"]
    query = "query($id: ID!) { customer(id: $id) { id name } }"

    assert api.data(query, {"id": customer["id"]})["customer"] == customer
    assert api.data(query, {"id": "cus_ffffffff9"})["customer"] is None
    assert api.data(query, {"id": "nonsense"})["customer"] is None


def test_get_request_answers_like_post_when_the_query_is_in_the_url(api: SupportAPI) -> None:
    query = "query($n: Int) { customers(first: $n) { edges { node { id } } } }"

    response = api.client.get(
        api.url,
        params={"query": query, "variables": '{"n": 3}'},
        headers={"Authorization": f"Bearer {api.token}"},
    )

    assert response.status_code == 200
    assert response.json()["data"] == api.data(query, {"n": 3})


SNAPSHOT = """{
  customers(first: 20) { totalCount edges { cursor node {
    id name email phone organization createdAt updatedAt
    tickets(first: 5) { edges { node {
      id subject status priority channel createdAt updatedAt
      comments(first: 5) { edges { node { id author body public createdAt } } }
    } } }
  } } }
  tickets(first: 50) { totalCount edges { node { id updatedAt customer { id } } } }
}"""


def test_two_sandboxes_serve_identical_data_when_started_with_the_same_seed(
    api: SupportAPI, client: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    twin = SupportAPI(client, make_sandbox())
    other = SupportAPI(client, make_sandbox(seed=8))

    assert twin.data(SNAPSHOT) == api.data(SNAPSHOT)
    assert other.data(SNAPSHOT) != api.data(SNAPSHOT)
