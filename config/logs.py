"""How every Outreach process logs: one JSON object per line, app and gunicorn alike.

python-json-logger writes the line. Each has ``time`` (ISO 8601, UTC), ``level``,
``logger`` and ``message``, then what the call passed in ``extra``; a record made
while a request is served also has its ``request_id`` and, when the caller sent a W3C
``traceparent``, its ``trace_id``. ``gunicorn.conf.py`` hands ``LOGGING`` to gunicorn,
and ``outreach.create_app`` installs the same formatter when nothing configured
logging before it, so ``flask run``, the CLI and gunicorn write one format.

Nothing here decides what is logged: callers never pass a token, a password, a
coordinate or a person ref (tests/test_secrets.py searches every line for them).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import g, has_request_context
from pythonjsonlogger.orjson import OrjsonFormatter

FIELDS = ("levelname", "name", "message")
RENAMED = {"levelname": "level", "name": "logger"}


def formatter() -> logging.Formatter:
    return OrjsonFormatter(list(FIELDS), rename_fields=RENAMED, timestamp="time")


_plain_records = logging.getLogRecordFactory()


def _record_with_request_ids(*args: Any, **kwargs: Any) -> logging.LogRecord:
    # On the record itself, when it is made: a handler may format it after the
    # request is over (a queue, a test's capture).
    record = _plain_records(*args, **kwargs)
    if has_request_context():
        for key in ("request_id", "trace_id"):
            value = g.get(key)
            if value is not None:
                setattr(record, key, value)
    return record


def install(level: int) -> None:
    """Put the request's ids on every record; log JSON lines to standard error at
    ``level``, unless logging is already set up (by gunicorn with ``LOGGING``, or by a
    test runner capturing records)."""
    logging.setLogRecordFactory(_record_with_request_ids)
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(formatter())
    root.addHandler(handler)
    root.setLevel(level)


# gunicorn's ``logconfig_dict``: its own loggers and the app's (the root) in JSON.
# gunicorn's access log stays off: the app writes one line per request
# (``outreach.http.log_access``), with the role and request id gunicorn cannot know.
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logs.formatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
    },
}
