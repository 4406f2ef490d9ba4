"""Marshmallow schemas: the API contract, pure (no database, no Flask)."""
