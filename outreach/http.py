"""Request and response plumbing shared by every route: JSON, request ids, headers."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from flask import Flask, Response, g, request
from flask.json.provider import JSONProvider

from outreach.extensions import client_key

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

API_CSP = "default-src 'none'; frame-ancestors 'none'"


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson: faster, and it bounds nesting depth."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


def assign_request_context() -> None:
    """Give the request an id (the client's if well formed) and a keyed client hash."""
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = supplied if _REQUEST_ID_PATTERN.match(supplied) else uuid.uuid4().hex
    g.client_hash = client_key()


def add_security_headers(response: Response) -> Response:
    """Headers every response carries; pages set their own CSP before this runs."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "geolocation=(), camera=(), microphone=()")
    headers.setdefault("Content-Security-Policy", API_CSP)
    if request.path.startswith("/api/"):
        headers["Cache-Control"] = "no-store"
    if "request_id" in g:
        headers[REQUEST_ID_HEADER] = g.request_id
    return response


def register_http_hooks(app: Flask) -> None:
    app.before_request(assign_request_context)
    app.after_request(add_security_headers)
