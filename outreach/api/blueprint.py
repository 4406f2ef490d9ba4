"""The Blueprint every resource uses: strict argument parsing with orjson."""

from __future__ import annotations

from typing import Any

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
        return orjson.loads(req.get_data(cache=True))


class Blueprint(SmorestBlueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictParser()
