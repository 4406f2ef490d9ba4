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
from webargs.flaskparser import FlaskParser, is_json_request


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
        return orjson.loads(data)

    def _get_schema(self, argmap: Any, req: Request) -> ma.Schema:
        # webargs makes a schema from its class on every request; a schema keeps no
        # state between loads, so one per class serves every request.
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            return _schema_of(argmap)
        schema: ma.Schema = super()._get_schema(argmap, req)
        return schema


@cache
def _schema_of(schema_class: type[ma.Schema]) -> ma.Schema:
    return schema_class()


class Blueprint(SmorestBlueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictParser()
