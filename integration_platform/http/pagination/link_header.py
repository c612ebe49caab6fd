"""Link-header pagination (RFC 8288): follows the link whose rel the spec names (`next`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from integration_platform.http.pagination.chain import ChainPaginator, follow_url
from integration_platform.http.pagination.request import PageRequest, PageResponse
from integration_platform.specs.models import LinkHeaderPagination

# -- Link headers (RFC 8288) ------------------------------------------------------------------
#
# Not httpx's `Response.links`: httpx 0.28 (the algorithm `requests` uses) splits on every `;`
# and `=`, so a `;` in a URL or a `;`/`=` in a quoted value cuts the link short and can drop
# its rel (the chain would end early, silently); it also keeps `rel="next last"` as one
# relation, matches `REL` case-sensitively and leaves `\"` escaped.
# test_httpx_links_miss_the_next_link_when_parse_link_header_finds_it measures this: when it
# fails, httpx has caught up, and LinkHeaderPaginator can read `links` and this parser go.

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"[ \t]*;[ \t]*([^\s=;,]*)[ \t]*(?:=[ \t]*({_QUOTED}|[^\s;,]*))?")
_ENTRY = re.compile(  # separators, then a link or anything else up to the next link's comma
    rf"[ \t,]*(?:<(?P<url>[^>]*)>(?P<params>(?:{_PARAM.pattern})*)[ \t]*(?:,|$)"
    r'|(?:"(?:[^"\\]|\\.)*"?|<[^>]*>?|[^,"<])*,?)'
)


@dataclass(frozen=True)
class Link:
    """One link of a Link header: its target and its parameters (names lower-cased)."""

    url: str
    params: Mapping[str, str]

    @property
    def rels(self) -> tuple[str, ...]:
        """The relation types: `rel="next last"` is two of them (compared lower-case)."""
        return tuple(self.params.get("rel", "").lower().split())


def parse_link_header(value: str) -> list[Link]:
    """Every link in a Link header value: `<url>; rel="next"; title="a, b", <url2>; rel=last`.

    Commas inside `<...>` or quoted strings do not split links; parameters come in any order,
    with optional whitespace around `;` and `=`. A repeated parameter keeps its first value
    (RFC 8288 §3.3). Malformed entries are skipped, never guessed at.
    """
    links: list[Link] = []
    for entry in _ENTRY.finditer(value):
        if entry["url"] is None:
            continue  # a malformed entry
        params: dict[str, str] = {}
        for name, param in _PARAM.findall(entry["params"]):
            if re.fullmatch(_QUOTED, param):
                param = re.sub(r"\\(.)", r"\1", param[1:-1])
            if name:
                params.setdefault(name.lower(), param)
        links.append(Link(url=entry["url"].strip(), params=params))
    return links


class LinkHeaderPaginator(ChainPaginator[LinkHeaderPagination]):
    """RFC 8288 `Link: <url>; rel="next"`: follows the link whose rel includes spec.rel."""

    def next_request(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not self.records(response):
            return None
        rel = self.spec.rel.lower()
        for value in httpx.Headers(response.headers).get_list("link"):
            for link in parse_link_header(value):
                if rel in link.rels and link.url:
                    return follow_url(link.url, request, response)
        return None
