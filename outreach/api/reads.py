"""The app's read model, handed to the use cases that answer figures (stats, reports)."""

from __future__ import annotations

from flask import current_app

from outreach.services.readmodel import ReadModel

READ_MODEL_KEY = "outreach.read_model"


def read_model() -> ReadModel:
    """This worker's read model (``services/readmodel``), registered by ``create_app``."""
    value: ReadModel = current_app.extensions[READ_MODEL_KEY]
    return value
