"""The Blueprint every resource uses: strict argument parsing with orjson."""

from __future__ import annotations

from functools import cache
from typing import Any

import marshmallow as ma
import orjson
from flask import Request
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import RAISE
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

# PostgreSQL's text cannot hold a NUL character, and no field of this API needs one.
NUL_REFUSED = "Text may not contain NUL characters."


class StrictParser(FlaskParser):
    """Parse bodies with orjson and refuse unknown query parameters.

    orjson bounds nesting depth (1024) and fails with a decode error, where the
    standard library would raise RecursionError on deeply nested input (a 500).
    A misspelt filter (``?sectr=``) must not be silently ignored either.
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        limit = req.max_content_length
        if req.content_length is None and limit is not None and len(data) >= limit:
            # A chunked body is cut at the cap without a word (Werkzeug raises 413 only
            # on the next read): read on, so that the client hears 413, not 400.
            req.stream.read(1)
        if not data:
            return core.missing
        try:
            loaded = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            if error.doc == "":
                # orjson's error for bytes that are not UTF-8 carries no document, which
                # webargs takes for an empty body: the items would be "stored" as none.
                abort(400, messages={"json": ["The body is not UTF-8 encoded JSON."]})
            raise
        # JSON carries a NUL only escaped: the rare body holding the escape is walked.
        if b"\\u0000" in data and _holds_nul(loaded):
            abort(422, messages={"json": [NUL_REFUSED]})
        return loaded

    def load_querystring(self, req: Request, schema: ma.Schema) -> Any:
        if any("\x00" in key or "\x00" in value for key, value in req.args.items(multi=True)):
            abort(422, messages={"query": [NUL_REFUSED]})
        return super().load_querystring(req, schema)

    def _get_schema(self, argmap: Any, req: Request) -> ma.Schema:
        # webargs makes a schema from its class on every request; a schema keeps no
        # state between loads, so one per class serves every request.
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            return _schema_of(argmap)
        schema: ma.Schema = super()._get_schema(argmap, req)
        return schema


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


@cache
def _schema_of(schema_class: type[ma.Schema]) -> ma.Schema:
    return schema_class()


class Blueprint(SmorestBlueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictParser()
