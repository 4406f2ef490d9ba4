"""``/api/docs``: the interactive API documentation, served with no CDN."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template

from outreach.api.access import public

blp = Blueprint("docs", __name__)

# Swagger UI sets inline styles; scripts come from this origin only.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


@blp.route("/api/docs")
@public
def docs() -> Response:
    response = make_response(render_template("docs.html"))
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
