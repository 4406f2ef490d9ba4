"""The workers' field app: an offline-first web app for the phone, served at ``/app/``.

Like the dashboard, the page holds no data of its own: its script logs in like any
client and calls the public ``/api/v1`` routes (``/vocabularies``, ``/sync``,
``/encounters``) with the worker's own token. What a worker logs waits in the phone's
IndexedDB until ``POST /sync`` has answered for it. A service worker keeps the app's
shell (page, script, style, h3-js, icons) so that the app opens with no network.
Everything is served from this origin; h3-js is vendored (``scripts/vendor.sh``).
``docs/field-app.md`` says what stays on the phone and what leaves it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, render_template, url_for

from outreach.api.access import public

STATIC = Path(__file__).parent / "static"
# The shell the service worker keeps for offline use, beside the page itself.
SHELL_FILES = (
    "app.css",
    "app.js",
    "vendor/h3-js/h3-js.umd.js",
    "icon.svg",
    "icon-192.png",
    "icon-512.png",
)

blp = Blueprint(
    "fieldapp",
    __name__,
    url_prefix="/app",
    template_folder="templates",
    static_folder="static",
)

# Only this origin. The page may ask for the phone's position (the worker's choice,
# with the person's consent); it then snaps it to a hexagon itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PERMISSIONS_POLICY = "geolocation=(self), camera=(), microphone=()"


@cache
def shell_version() -> str:
    """A digest of the shell's files and templates: a new release gets a new offline
    cache, and the service worker replaces the old one."""
    digest = hashlib.sha256()
    for path in sorted([*STATIC.rglob("*"), *(Path(__file__).parent / "templates").glob("*")]):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _page(body: str, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Permissions-Policy"] = PERMISSIONS_POLICY
    # Always asked again when online; offline, the service worker answers.
    response.headers["Cache-Control"] = "no-cache"
    return response


@blp.route("/", methods=["GET"])
@public
def page() -> Response:
    """The field app's page (it logs in through the API)."""
    return _page(render_template("fieldapp.html", version=shell_version()), "text/html")


@blp.route("/sw.js", methods=["GET"])
@public
def service_worker() -> Response:
    """The service worker, with the shell's files and version written in.

    Served by a view, not as a static file: a worker's CSP is its script's response
    header, and it must allow the worker to fetch from this origin.
    """
    shell = [url_for("fieldapp.page"), url_for("fieldapp.manifest")] + [
        url_for("fieldapp.static", filename=name) for name in SHELL_FILES
    ]
    body = render_template("sw.js", version=shell_version(), shell=shell)
    return _page(body, "text/javascript")


@blp.route("/manifest.webmanifest", methods=["GET"])
@public
def manifest() -> Response:
    """The web app manifest: what a phone needs to install the app on its home screen."""
    return _page(render_template("manifest.webmanifest"), "application/manifest+json")
