"""Building blocks shared by every resource's schemas."""

from __future__ import annotations

from datetime import date
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

MAX_PER_PAGE = 500
# Every day a query may name: the service's data starts this century, and a far day
# (9999-12-31, 0001-01-05) overflowed the date arithmetic behind it into a 500.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)


class Day(fields.Date):
    """An ISO calendar day between ``FIRST_DAY`` and ``LAST_DAY`` (422 outside)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"description": "", **kwargs.pop("metadata", {})}
        bounds = f"between {FIRST_DAY} and {LAST_DAY}"
        metadata["description"] = f"{metadata['description']} ({bounds})".lstrip(" ")
        super().__init__(
            validate=validate.Range(
                min=FIRST_DAY, max=LAST_DAY, error=f"A day {bounds}, inclusive."
            ),
            metadata=metadata,
            **kwargs,
        )


class StrictBoolean(fields.Boolean):
    """A JSON boolean only: ``"yes"``, ``1`` and ``"true"`` are type errors in a body."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        # A type test, not membership: ``1 in {True}`` holds, since 1 == True in Python.
        if type(value) is not bool:
            raise self.make_error("invalid", input=value)
        return value


class PaginationQuery(ma.Schema):
    """``?page=&per_page=``; a page size above the maximum is capped to it."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1))

    @ma.post_load
    def cap_page_size(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        data["per_page"] = min(data["per_page"], MAX_PER_PAGE)
        return data


class PageSchema(ma.Schema):
    """Every list answers ``{items, page, per_page, total}``."""

    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


def page_of(item_schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A page schema whose ``items`` are dumped with ``item_schema``."""
    return type(
        name,
        (PageSchema,),
        {"items": fields.List(fields.Nested(item_schema), required=True)},
    )


class ErrorSchema(ma.Schema):
    """The one error envelope, for every status."""

    code = fields.Integer(required=True, metadata={"description": "HTTP status code"})
    status = fields.String(required=True, metadata={"description": "HTTP status name"})
    message = fields.String(metadata={"description": "What went wrong, for a person"})
    errors = fields.Dict(metadata={"description": "Field paths and their messages"})


class StrictInteger(fields.Integer):
    """A JSON integer only: ``"3"``, ``3.5`` and ``true`` are type errors."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        result: int = super()._deserialize(value, attr, data, **kwargs)
        return result


class StrictFloat(fields.Float):
    """A JSON number only (no string, boolean, NaN or infinity)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        result: float = super()._deserialize(value, attr, data, **kwargs)
        return result
