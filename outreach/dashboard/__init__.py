"""The coordinators' web page: a map and the aggregates, drawn from the public API.

The page holds no data of its own: its script logs in like any client and calls the
same ``/api/v1`` routes with the user's own token, so it shows nothing a curl user of
the same role would not get, and every read is audited the same way. Leaflet is
vendored under ``static/vendor`` (``scripts/vendor.sh``): the page makes no outside
request unless a base-map tile URL is configured.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, render_template

from outreach.api.access import public, settings

blp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
)


def content_security_policy(tile_url: str | None) -> str:
    """Only this origin, plus the tile server's images when one is configured."""
    images = "'self' data:"
    if tile_url:
        # Leaflet's {s} subdomains become a CSP wildcard host.
        parts = urlsplit(tile_url.replace("{s}", "*"))
        images += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


@blp.route("", methods=["GET"])
@public
def page() -> Response:
    """The dashboard (it logs in through the API)."""
    tile_url = settings().tile_url
    response = Response(render_template("dashboard.html", tile_url=tile_url or ""))
    response.headers["Content-Security-Policy"] = content_security_policy(tile_url)
    response.headers["Cache-Control"] = "no-store"
    return response
