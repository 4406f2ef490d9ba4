"""The list envelope every paginated route answers with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from outreach.services.pagination import Page


def page_body(result: Page[Any], dump: Callable[[Any], Any] = lambda item: item) -> dict[str, Any]:
    return {
        "items": [dump(item) for item in result.items],
        "page": result.page,
        "per_page": result.per_page,
        "total": result.total,
    }
