"""Request and response plumbing shared by every route: JSON, request ids, headers,
compression, and the leftover of a body a refusal did not read."""

from __future__ import annotations

import gzip
import logging
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import IO, Any

import orjson
from flask import Flask, Response, current_app, g, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import (
    BadRequest,
    ClientDisconnected,
    HTTPException,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from werkzeug.wsgi import LimitedStream

from outreach.extensions import client_key

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# W3C Trace Context: version-trace_id-parent_id-flags, in lower-case hex.
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-[0-9a-f]{2}"
)
_access_log = logging.getLogger("outreach.access")

API_CSP = "default-src 'none'; frame-ancestors 'none'"


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson: faster, and it bounds nesting depth."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


def assign_request_context() -> None:
    """Give the request an id (the client's if well formed), a keyed client hash, its
    start time, and the trace id of a well-formed W3C ``traceparent``."""
    g.started = time.perf_counter()
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = supplied if _REQUEST_ID_PATTERN.match(supplied) else uuid.uuid4().hex
    g.client_hash = client_key()
    trace = _TRACEPARENT.match(request.headers.get("traceparent", "").strip().lower())
    # The all-zero ids are invalid (W3C Trace Context, 3.2.2.3 and 3.2.2.4).
    if trace and trace["trace"] != "0" * 32 and trace["parent"] != "0" * 16:
        g.trace_id = trace["trace"]
        g.parent_id = trace["parent"]


def log_access(response: Response) -> Response:
    """One line per request: what was asked, by which role, how it ended, how fast.

    The path only (no query string, no body, no header): nothing a person could be
    told apart by, nor a token. ``request_id`` and ``trace_id`` are added by the
    formatter (config/logs.py).
    """
    principal = g.get("principal")
    started = g.get("started")
    _access_log.info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": None
            if started is None
            else round((time.perf_counter() - started) * 1000, 1),
            "role": principal.role.value if principal is not None else None,
            "parent_id": g.get("parent_id"),
        },
    )
    return response


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
        # What carries an ETag may be kept by the caller's own HTTP cache and must be
        # revalidated before each use, which phones' stacks do by themselves; nothing
        # else of the API is stored anywhere.
        headers["Cache-Control"] = "private, no-cache" if "ETag" in headers else "no-store"
    if "request_id" in g:
        headers[REQUEST_ID_HEADER] = g.request_id
    return response


# What a refused request leaves unread is read up to this many times the body cap: what
# the shipped nginx lets through (client_max_body_size 4m over the service's 2 MiB).
UNREAD_BODY_CAP_FACTOR = 2
_READ_SIZE = 64 * 1024


def read_unread_body(response: Response) -> Response:
    """Read what the request body still holds before the answer goes out.

    A refusal (401, 403, 413, 429, ...) answers before reading the body. gunicorn reads
    at most 64 KiB of such a leftover and otherwise closes the connection while the
    client is still sending it: the reset can then destroy the answer before the client
    reads it (nginx in front then answers 503 instead of the refusal, and a phone whose
    sync was refused with 401 never learns to refresh its token). So the rest is read
    here, bounded by a
    multiple of the body cap; beyond it, or for a body of unknown length, gunicorn's own
    rule applies.
    """
    length = request.content_length
    cap = current_app.config["MAX_CONTENT_LENGTH"]
    if not length or cap is None or length > UNREAD_BODY_CAP_FACTOR * cap:
        return response
    stream: IO[bytes] | LimitedStream
    try:
        stream = request.stream
    except RequestEntityTooLarge:
        # Over the cap: Werkzeug refused it unread, so all of it is still there.
        stream = LimitedStream(request.environ["wsgi.input"], length)
    try:
        while stream.read(_READ_SIZE):
            pass
    except (ClientDisconnected, OSError):
        pass  # the client is gone; nothing is left to protect
    return response


# JSON and GeoJSON shrink six to eight times; what is smaller than a packet is left as is.
COMPRESSED_TYPES = frozenset({"application/json", "application/geo+json"})
COMPRESS_MIN_BYTES = 1400
# The fastest level: most of the size saved for the least CPU (bench/RESULTS.md); behind
# the shipped nginx, which compresses itself, the service is never asked to.
COMPRESS_LEVEL = 1


def compress(response: Response) -> Response:
    """gzip a JSON or GeoJSON body for a client that accepts it.

    For the service serving alone; the shipped nginx compresses itself and does not
    pass the client's Accept-Encoding on (deploy/nginx/outreach-proxy.conf). A strong
    ETag is weakened, as nginx does: the bytes differ, the content does not, and
    ``If-None-Match`` compares weakly.
    """
    if (
        response.mimetype not in COMPRESSED_TYPES
        or response.direct_passthrough
        or "Content-Encoding" in response.headers
        or not request.accept_encodings["gzip"]
    ):
        return response
    response.vary.add("Accept-Encoding")
    body = response.get_data()
    if len(body) < COMPRESS_MIN_BYTES:
        return response
    response.set_data(gzip.compress(body, compresslevel=COMPRESS_LEVEL))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:
        response.set_etag(etag, weak=True)
    return response


# Where ``DecodedBodies`` leaves the refusal of a body it could not decode, for the
# app to answer in its envelope.
BODY_REFUSAL_KEY = "outreach.body_refusal"


class DecodedBodies:
    """WSGI middleware: a ``Content-Encoding: gzip`` request body is decompressed before
    the app reads it, at most ``cap`` bytes once decompressed (the body cap applies to
    what is parsed, so a small compression bomb is a 413); any other coding is a 415.

    Phones on poor networks send less this way. The refusal is left in the environ and
    raised by ``refuse_undecoded_body`` inside the app, so it leaves in the error
    envelope with the request's id.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], cap: int) -> None:
        self.app, self.cap = app, cap

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        coding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if coding and coding != "identity":
            if coding == "gzip":
                self._decompress(environ)
            else:
                environ[BODY_REFUSAL_KEY] = UnsupportedMediaType(
                    "A request body may be sent as is or with Content-Encoding: gzip only."
                )
                self._replace_body(environ, b"")
        return self.app(environ, start_response)

    def _decompress(self, environ: dict[str, Any]) -> None:
        raw = self._read_compressed(environ)
        if raw is None:
            environ[BODY_REFUSAL_KEY] = RequestEntityTooLarge()
            self._replace_body(environ, b"")
            return
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        refusal: HTTPException | None = None
        try:
            body = inflater.decompress(raw, self.cap + 1)
        except zlib.error:
            body, refusal = b"", BadRequest("The body is not valid gzip.")
        else:
            if len(body) > self.cap:
                body, refusal = (
                    b"",
                    RequestEntityTooLarge(f"The decompressed body is over {self.cap} bytes."),
                )
            elif not inflater.eof or inflater.unused_data:
                body, refusal = b"", BadRequest("The body is not one whole gzip stream.")
        if refusal is not None:
            environ[BODY_REFUSAL_KEY] = refusal
        self._replace_body(environ, body)

    def _read_compressed(self, environ: dict[str, Any]) -> bytes | None:
        """The compressed body, or ``None`` when it is itself over the cap."""
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH", "")
        if length.isdigit():
            if int(length) > self.cap:
                return None
            return bytes(stream.read(int(length)))
        chunks: list[bytes] = []
        size = 0
        while size <= self.cap:
            chunk = stream.read(_READ_SIZE)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        return None

    @staticmethod
    def _replace_body(environ: dict[str, Any], body: bytes) -> None:
        environ["wsgi.input"] = BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_CONTENT_ENCODING", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False


def refuse_undecoded_body() -> None:
    refusal: HTTPException | None = request.environ.get(BODY_REFUSAL_KEY)
    if refusal is not None:
        raise refusal


def register_http_hooks(app: Flask) -> None:
    app.before_request(assign_request_context)
    # Registered first, so run last: the line has the status the client gets.
    app.after_request(log_access)
    # Run in reverse order of registration: the body is read, then compressed, then
    # the headers are set (with Cache-Control seeing the final ETag).
    app.before_request(refuse_undecoded_body)
    app.after_request(add_security_headers)
    app.after_request(compress)
    app.after_request(read_unread_body)
