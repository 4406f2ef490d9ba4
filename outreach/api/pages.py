"""The list envelope every paginated route answers with, and its RFC 8288 ``Link``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import request

from outreach.services.pagination import Page

# What a list view returns: flask-smorest dumps the body and sends the headers.
PageResponse = tuple[dict[str, Any], dict[str, str]]

LINK_HEADER_DOC = {
    "Link": {
        "schema": {"type": "string"},
        "description": "RFC 8288 links to the first, previous, next and last pages",
    }
}


def page_body(result: Page[Any], dump: Callable[[Any], Any] = lambda item: item) -> PageResponse:
    body = {
        "items": [dump(item) for item in result.items],
        "page": result.page,
        "per_page": result.per_page,
        "total": result.total,
    }
    return body, {"Link": links(result.page, result.per_page, result.total)}


def links(page: int, per_page: int, total: int) -> str:
    """``first`` and ``last`` always; ``prev`` and ``next`` where there are such pages.

    Each is this request's URL with only ``page`` changed, so filters carry over.
    """
    last = max(1, math.ceil(total / per_page))
    relations = {"first": 1}
    if page > 1:
        relations["prev"] = min(page - 1, last)
    if page < last:
        relations["next"] = page + 1
    relations["last"] = last
    return ", ".join(f'<{_url(number)}>; rel="{rel}"' for rel, number in relations.items())


def _url(page: int) -> str:
    args = request.args.copy()
    args["page"] = str(page)
    return f"{request.base_url}?{urlencode(list(args.items(multi=True)))}"
