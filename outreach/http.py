"""Request and response plumbing shared by every route: JSON, request ids, headers, and
the leftover of a body a refusal did not read."""

from __future__ import annotations

import re
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


# What a refused request leaves unread is read up to this many times the body cap: what
# the shipped nginx lets through (client_max_body_size 4m over the service's 2 MiB).
UNREAD_BODY_CAP_FACTOR = 2
_READ_SIZE = 64 * 1024


def read_unread_body(response: Response) -> Response:
    """Read what the request body still holds before the answer goes out.

    A refusal (401, 403, 413, 429, ...) answers before reading the body. gunicorn reads
    at most 64 KiB of such a leftover and otherwise closes the connection while the
    client is still sending it: the reset can then destroy the answer before the client
    reads it (nginx once answered 503 for a 3 MiB login the service refused with 413; a
    large sync refused with 401 is as exposed). So the rest is read here, bounded by a
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
    app.before_request(refuse_undecoded_body)
    app.after_request(add_security_headers)
    app.after_request(read_unread_body)
