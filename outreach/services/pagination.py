"""Page through a SELECT: the one shape every list endpoint answers with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from schemas.common import MAX_PER_PAGE

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    page: int
    per_page: int
    total: int


def paginate(session: Session, statement: Select[Any], page: int, per_page: int) -> Page[Any]:
    """Run ``statement`` for one page (1-based) and count every matching row."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)
    total = session.execute(
        select(func.count()).select_from(statement.order_by(None).subquery())
    ).scalar_one()
    items = session.scalars(statement.limit(per_page).offset((page - 1) * per_page)).all()
    return Page(items=items, page=page, per_page=per_page, total=total)
