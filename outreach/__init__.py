"""Outreach: the application factory, the only place that wires things together."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from flask import Flask
from sqlalchemy.exc import OperationalError, ProgrammingError
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings, load_settings, logs
from outreach import dashboard, fieldapp
from outreach.api import BLUEPRINTS, contract, docs
from outreach.api.access import SECURITY_KEY, audit_failed_request
from outreach.api.errors import register_error_handlers
from outreach.api.reads import READ_MODEL_KEY
from outreach.cli import COMMANDS
from outreach.clock import paris_today
from outreach.extensions import Api, db, jwt, limiter
from outreach.http import DecodedBodies, OrjsonProvider, register_http_hooks
from outreach.services.auth import Security
from outreach.services.login_guard import LoginGuard
from outreach.services.passwords import Passwords
from outreach.services.readmodel import ReadModel
from outreach.services.stats.warmup import publish_ahead, warm_spans


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from ``settings`` (read from ``OUTREACH_*`` when not given)."""
    settings = settings or load_settings()
    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.from_mapping(settings.flask_config())
    app.json = OrjsonProvider(app)
    app.wsgi_app = DecodedBodies(app.wsgi_app, settings.max_body_bytes)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_request_hooks(app)
    register_commands(app)
    return app


def configure_logging(app: Flask) -> None:
    # JSON lines (config/logs.py), as gunicorn writes them. Request bodies, tokens and
    # coordinates are never logged by this code.
    logs.install(logging.INFO if app.config["ENV_NAME"] != "testing" else logging.WARNING)


def register_extensions(app: Flask) -> None:
    settings: Settings = app.config["OUTREACH_SETTINGS"]
    db.init_app(app)
    jwt.init_app(app)
    limiter.init_app(app)
    app.extensions[SECURITY_KEY] = Security(
        passwords=Passwords(settings),
        guard=LoginGuard(
            limiter.storage,
            max_failures_per_user=settings.login_max_failures,
            max_failures_per_client=settings.login_client_max_failures,
            lockout_seconds=settings.login_lockout_minutes * 60,
        ),
        pepper=settings.pepper,
        token_key=settings.jwt_secret,
        access_ttl=app.config["JWT_ACCESS_TOKEN_EXPIRES"],
        refresh_ttl=app.config["JWT_REFRESH_TOKEN_EXPIRES"],
    )
    app.extensions[READ_MODEL_KEY] = ReadModel.from_settings(settings)


def register_blueprints(app: Flask) -> None:
    api = Api(app, spec_kwargs={"extra_plugins": [contract.ContractPlugin()]})
    contract.complete(api)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    app.register_blueprint(docs.blp)
    app.register_blueprint(dashboard.blp)
    app.register_blueprint(fieldapp.blp)


def register_errorhandlers(app: Flask) -> None:
    register_error_handlers(app)


def register_request_hooks(app: Flask) -> None:
    register_http_hooks(app)
    app.after_request(audit_failed_request)


def register_commands(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)


# Pauses before each new try of the read-ahead while the database does not answer or
# has no tables yet (a worker started during an outage, or before the migrations):
# about ten minutes in all.
READ_AHEAD_RETRY_WAITS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, *(60.0,) * 9)


def read_ahead(app: Flask, retry_waits: Sequence[float] = READ_AHEAD_RETRY_WAITS) -> None:
    """Read the whole area's map spans and filtered stats' day rows of the default
    periods ahead into the app's read model (``stats.warmup.warm_spans``), so that this
    worker's first map or filtered summary does not read a year of rows, then publish
    those periods' coordinators' maps (``stats.warmup.publish_ahead``), so that its
    first map is not written whole.

    gunicorn runs it in a thread of each new worker (``gunicorn.conf.py``); requests are
    served meanwhile. It only fills caches: a failure is logged and costs that speed.
    While the database does not answer it tries again after each of ``retry_waits``, so a
    worker started during an outage reads ahead once the database is back.
    """
    model: ReadModel = app.extensions[READ_MODEL_KEY]
    if not model.keeps_map_spans and not model.keeps_day_rows:
        return
    log = logging.getLogger("outreach.read_ahead")
    pause = threading.Event()
    for wait in (*retry_waits, None):
        started = time.perf_counter()
        today = paris_today()
        try:
            with app.app_context():
                map_spans, day_spans = warm_spans(db.session, model, today)
                published = publish_ahead(db.session, app.config["OUTREACH_SETTINGS"], model, today)
        except (OperationalError, ProgrammingError) as exc:
            # Unreachable, or reachable before its tables (migrations not yet run).
            cause = type(exc.orig or exc).__name__
            if wait is None:
                log.warning("not read ahead: %s; gave up", cause)
                return
            log.warning("not read ahead yet: %s; trying again in %.0f s", cause, wait)
            pause.wait(wait)
            continue
        except Exception as exc:  # whatever it is, the worker serves without it
            log.warning("not read ahead: %s", type(exc).__name__)
            return
        log.info(
            "read ahead %d map spans and %d day spans and published %d maps in %.1f s",
            map_spans,
            day_spans,
            published,
            time.perf_counter() - started,
        )
        return
