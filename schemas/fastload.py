"""Loaders compiled from marshmallow schemas, for items that are plainly valid.

A sync batch loads up to 500 items one at a time, and marshmallow's generic
machinery (error stores, hooks, per-field dispatch) costs far more than the values it
checks (bench/RESULTS.md, ingest). ``fast_loader(schema)`` walks the schema once and
returns a ``load`` that first tries a path built from the schema's own fields:
each value must have its exact JSON type, and the field's own validators and the
schema's own ``validates_schema`` hooks run on it. An item it accepts comes out
exactly as ``schema.load`` would give it; anything else (a wrong type, a missing
field, a failed validator, an unknown key) goes to ``schema.load``, which gives
marshmallow's result or its messages. The schema stays the one contract; a
property test checks that both paths agree.

Only the field and schema features the schemas use are compiled; anything else
raises ``TypeError`` when the loader is built, not when an item arrives.
"""

from __future__ import annotations

import inspect
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import marshmallow as ma
from marshmallow import fields
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

from schemas.common import StrictBoolean, StrictFloat, StrictInteger

Load = Callable[[Any], dict[str, Any]]
_Convert = Callable[[Any], Any]


class _Decline(Exception):
    """Not plainly valid: marshmallow loads it and says why."""


def fast_loader(schema: ma.Schema) -> Load:
    """``schema.load`` for one item, through the compiled path when the item is plain."""
    plain = compile_plain(schema)

    def load(raw: Any) -> dict[str, Any]:
        result = plain(raw)
        if result is None:
            result = schema.load(raw)
        return result

    return load


def compile_plain(schema: ma.Schema) -> Callable[[Any], dict[str, Any] | None]:
    """What ``schema.load`` gives for a plainly valid item, and ``None`` for any other."""
    compiled = _object(schema)

    def load(raw: Any) -> dict[str, Any] | None:
        try:
            return compiled(raw)
        except (_Decline, ma.ValidationError):
            return None

    return load


def _hooks_of(schema_class: type[ma.Schema]) -> dict[str, list[tuple[str, bool, dict[str, Any]]]]:
    """The hooks a schema class declares, by tag: each as (method name, pass_many,
    options). Marshmallow's decorators mark each hook method with the public
    ``MarshmallowHook.__marshmallow_hook__`` attribute, which this reads from the
    class's own attributes as the schema's metaclass does."""
    hooks: dict[str, list[tuple[str, bool, dict[str, Any]]]] = {
        tag: [] for tag in (PRE_LOAD, POST_LOAD, VALIDATES, VALIDATES_SCHEMA)
    }
    for name in dir(schema_class):
        marked = getattr(inspect.getattr_static(schema_class, name), "__marshmallow_hook__", None)
        for tag, configs in (marked or {}).items():
            hooks.setdefault(tag, []).extend((name, many, options) for many, options in configs)
    return hooks


def _object(schema: ma.Schema) -> Callable[[Any], dict[str, Any]]:
    name = type(schema).__name__
    hooks = _hooks_of(type(schema))
    if schema.many or schema.unknown != ma.RAISE or schema.partial:
        raise TypeError(f"{name}: only single, unknown=RAISE, non-partial schemas compile")
    if hooks[PRE_LOAD] or hooks[POST_LOAD] or hooks[VALIDATES]:
        raise TypeError(f"{name}: pre_load, post_load and validates hooks do not compile")
    validators = []
    for attribute, pass_many, options in hooks[VALIDATES_SCHEMA]:
        if pass_many or options.get("pass_original"):
            raise TypeError(f"{name}.{attribute}: pass_many and pass_original do not compile")
        validators.append(getattr(schema, attribute))
    plan = []
    for attribute, field in schema.load_fields.items():
        if field.attribute is not None:
            raise TypeError(f"{name}.{attribute}: a field's attribute does not compile")
        key = field.data_key if field.data_key is not None else attribute
        plan.append((key, attribute, _value(field), field.required, field.load_default))
    known = frozenset(key for key, *_ in plan)
    missing = ma.missing

    def load(raw: Any) -> dict[str, Any]:
        if type(raw) is not dict or not known.issuperset(raw):
            raise _Decline
        out: dict[str, Any] = {}
        for key, attribute, convert, required, default in plan:
            value = raw.get(key, missing)
            if value is not missing:
                out[attribute] = convert(value)
            elif required:
                raise _Decline
            elif default is not missing:
                out[attribute] = default() if callable(default) else default
        for validate in validators:
            validate(out, partial=None, many=False, unknown=ma.RAISE)
        return out

    return load


def _value(field: fields.Field[Any]) -> _Convert:
    """A present value of ``field``, None included, as ``field.deserialize`` gives it."""
    if field.pre_load or field.post_load:
        raise TypeError(f"{field.name}: field pre_load and post_load do not compile")
    convert = _converter(field)
    checks = tuple(field.validators)
    allow_none = field.allow_none

    def load(value: Any) -> Any:
        if value is None:
            if allow_none:
                return None
            raise _Decline
        result = convert(value)
        for check in checks:
            if check(result) is False:
                raise _Decline
        return result

    return load


def _converter(field: fields.Field[Any]) -> _Convert:
    """The type test and conversion of one field kind, without its validators."""
    kind = type(field)
    if kind is fields.String:
        return _typed(str)
    if kind is StrictInteger:
        return _typed(int)
    if kind is StrictBoolean:
        return _typed(bool)
    if kind is StrictFloat:
        return _number
    if kind is fields.UUID:
        return _uuid
    if kind is fields.AwareDateTime:
        return _aware_datetime(field)
    if kind is fields.Nested:
        return _nested(field)
    if kind is fields.List:
        return _list(field)
    if kind is fields.Dict:
        return _dict(field)
    raise TypeError(f"{field.name}: no compiled loader for {kind.__name__}")


def _typed(python_type: type) -> _Convert:
    # ``type(...) is``: a bool is an int, and an int is no float, to marshmallow's strict fields.
    def load(value: Any) -> Any:
        if type(value) is not python_type:
            raise _Decline
        return value

    return load


def _number(value: Any) -> float:
    if type(value) is not float and type(value) is not int:
        raise _Decline
    try:
        number = float(value)
    except OverflowError:
        raise _Decline from None
    if not math.isfinite(number):
        raise _Decline
    return number


def _uuid(value: Any) -> uuid.UUID:
    if type(value) is not str:
        raise _Decline
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _Decline from None


def _aware_datetime(field: fields.Field[Any]) -> _Convert:
    # marshmallow's own ISO parsing is ``datetime.fromisoformat``: called directly,
    # without the field machinery around it.
    assert isinstance(field, fields.AwareDateTime)
    if (field.format or field.DEFAULT_FORMAT) not in ("iso", "iso8601"):
        raise TypeError(f"{field.name}: only ISO 8601 datetimes compile")
    default_timezone = field.default_timezone

    def load(value: Any) -> datetime:
        if type(value) is not str:
            raise _Decline
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _Decline from None
        if moment.utcoffset() is None:
            if default_timezone is None:
                raise _Decline
            moment = moment.replace(tzinfo=default_timezone)
        return moment

    return load


def _nested(field: fields.Field[Any]) -> _Convert:
    assert isinstance(field, fields.Nested)
    if field.many or field.only or field.exclude or field.unknown is not None:
        raise TypeError(f"{field.name}: only a plain Nested compiles")
    schema = field.schema
    assert isinstance(schema, ma.Schema)
    return _object(schema)


def _list(field: fields.Field[Any]) -> _Convert:
    assert isinstance(field, fields.List)
    item = _value(field.inner)

    def load(value: Any) -> list[Any]:
        if type(value) is not list:
            raise _Decline
        return [item(each) for each in value]

    return load


def _dict(field: fields.Field[Any]) -> _Convert:
    assert isinstance(field, fields.Dict)
    if field.key_field is None or field.value_field is None:
        raise TypeError(f"{field.name}: a Dict compiles with keys and values fields")
    key, item = _value(field.key_field), _value(field.value_field)

    def load(value: Any) -> dict[Any, Any]:
        if type(value) is not dict:
            raise _Decline
        return {key(name): item(each) for name, each in value.items()}

    return load
