"""What the OpenAPI document says beyond what flask-smorest writes by itself.

Integrators generate clients from ``/api/openapi.json`` (``openapi-python-client``;
``tests/test_client.py`` does it), so the document names each operation as a person
would name the function, gives every error its body, names enum members, and spells a
nullable nested object so that generators keep its schema. Each rule is applied to
every operation and field here, in one place, rather than view by view.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import marshmallow as ma
from apispec import BasePlugin
from flask_smorest import Api
from werkzeug.routing import Rule

from outreach.api.pages import LINK_HEADER_DOC
from schemas.geojson import GEOMETRY_COMPONENTS

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# A GET view named for what it returns (``summary``, ``me``) is ``get_summary``; one
# already named for reading (``get_encounter``, ``list_users``) keeps its name.
_READ_VERBS = ("get_", "list_")


class ContractPlugin(BasePlugin):
    """Operation ids from the view names, the error envelope on every error status, and
    the ``Link`` header on every list."""

    def operation_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        rule: Rule | None = kwargs.get("rule")
        if operations is None or rule is None or rule.endpoint is None:
            return
        view = rule.endpoint.rsplit(".", 1)[-1]
        for method, operation in operations.items():
            operation.setdefault("operationId", operation_id(method, view))
            for status, response in operation.get("responses", {}).items():
                if not isinstance(response, dict):
                    continue
                if _is_error(status):
                    response.setdefault("content", copy.deepcopy(ERROR_BODY))
                elif _is_page(response):
                    response.setdefault("headers", {}).update(LINK_HEADER_DOC)


def operation_id(method: str, view: str) -> str:
    """``summary`` read with GET is ``get_summary``; ``sync`` and ``login`` stay as named."""
    if method.lower() == "get" and not view.startswith(_READ_VERBS):
        return f"get_{view}"
    return view


def _is_error(status: int | str) -> bool:
    return str(status).isdigit() and int(status) >= 400


def _is_page(response: dict[str, Any]) -> bool:
    """Whether the body is a list envelope (``pages.page_body``), which sends ``Link``."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return isinstance(schema, dict) and str(schema.get("$ref", "")).endswith("Page")


def enum_names(self: Any, field: ma.fields.Field[Any], ret: dict[str, Any]) -> dict[str, Any]:
    """A marshmallow-to-OpenAPI attribute function (``self`` is apispec's converter).

    Names each enum member (``x-enum-varnames``), so that ``<18`` becomes ``UNDER_18``
    and a resolution of 7 ``RESOLUTION_7`` in a generated client rather than
    ``VALUE_0``; and spells a nullable nested object as ``anyOf: [ref], nullable``,
    where apispec's ``anyOf: [{type: object}, ref]`` lets generators stop at the
    first, shapeless arm.
    """
    arms = ret.get("anyOf")
    if (
        isinstance(arms, list)
        and len(arms) == 2
        and arms[0] == {"type": "object", "nullable": True}
        and "$ref" in arms[1]
    ):
        ret["anyOf"] = [arms[1]]
        ret["nullable"] = True
    values = ret.get("enum")
    if not values:
        return {}
    return {"x-enum-varnames": [enum_name(value, field.name or "value") for value in values]}


_SPELLED = (("<", " under "), (">", " over "), ("+", " plus "), ("-", " to "))


def enum_name(value: object, prefix: str) -> str:
    """An identifier for an enum value: ``55+`` of ``age_band`` is ``AGE_BAND_55_PLUS``."""
    text = str(value)
    for symbol, word in _SPELLED:
        text = text.replace(symbol, word)
    name = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")
    if not name or not name[0].isalpha():
        name = f"{prefix}_{name}"
    return name.upper()


def complete(api: Api) -> None:
    """Add to a new ``Api``'s spec what its views cannot declare themselves."""
    api.ma_plugin.converter.add_attribute_function(enum_names)
    for name, schema in GEOMETRY_COMPONENTS.items():
        api.spec.components.schema(name, schema)
    # flask-smorest publishes it for its own pagination, which this API does not use
    # (lists answer {items, page, per_page, total} and a Link header).
    api.spec.components.schemas.pop("PaginationMetadata", None)
