"""List answers of the JSON APIs: a bare array or ``{"items": [...]}``, and how to page on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jetwatch.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list answer and where the next one is, if the body says so."""

    items: list[Any]
    next_offset: int | None = None
    limit: int | None = None
    next_link: str | None = None


def _int_field(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def parse_page(body: Any) -> Page:
    """Split a list answer (bare array or ``{"items": [...]}``) into items and paging hints.

    Paging by ``offset``/``limit``/``totalResultCount`` continues after the last item received;
    a ``next`` string is a link to the next page. An empty page never asks for another.
    """
    if isinstance(body, list):
        return Page(items=body)
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ProtocolError("list answer is neither an array nor an object with items")
    items: list[Any] = body["items"]
    link = body.get("next")
    next_link = link if isinstance(link, str) and link and items else None
    total = _int_field(body, "totalResultCount")
    offset = _int_field(body, "offset") or 0
    limit = _int_field(body, "limit")
    next_offset = None
    if total is not None and items and offset + len(items) < total:
        next_offset = offset + len(items)
    return Page(items=items, next_offset=next_offset, limit=limit, next_link=next_link)
