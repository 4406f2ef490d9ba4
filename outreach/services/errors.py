"""Failures a use case reports; the API layer turns each into one HTTP status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

# Field errors as marshmallow reports them: per field, its messages, or per sub-field
# or list index, the same again.
FieldErrors: TypeAlias = dict[str, "list[str] | FieldErrors"]


class ServiceError(Exception):
    """Base of every expected failure of a use case."""

    status = 400

    def __init__(self, message: str, errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = dict(errors) if errors else None


class Invalid(ServiceError):
    """The request is well formed but breaks a rule (field paths in ``errors``)."""

    status = 422


class Unauthorized(ServiceError):
    """No valid credentials: bad password, bad, expired or revoked token."""

    status = 401


class Forbidden(ServiceError):
    """The caller's role does not allow this function."""

    status = 403


class NotFound(ServiceError):
    """No such object visible to the caller (also for other organisations' objects)."""

    status = 404


class Conflict(ServiceError):
    """The object exists in another state (a taken username, for example)."""

    status = 409


class TooManyAttempts(ServiceError):
    """Locked out after repeated failures; retry after ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
