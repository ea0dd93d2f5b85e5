"""Throwaway users of whichever user model is installed, for the matrix and the W003 check.

Nothing here assumes ``auth.User``: a user is built from the model's own
fields. The login name goes into ``USERNAME_FIELD`` (an address when that is an
``EmailField``); the primary key comes from the database when it is
auto-generated, from the field's default (a UUID) when it has one, and is the
login name when it is the username field; every other field that has neither a
default nor an empty value the database takes gets a placeholder of its own
type. A field no placeholder can be made for (a required foreign key, a unique
integer) raises :class:`UnbuildableUser`, naming the field, so callers can
say why instead of failing on the database's NOT NULL or unique error.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, cast

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

EMAIL_DOMAIN = "example.com"  # reserved for examples (RFC 2606): never a real mailbox


class UnbuildableUser(Exception):
    """The user model has a field for which no throwaway value can be invented."""


def user_values(model: type[models.Model], name: str) -> dict[str, Any]:
    """Keyword arguments for a new ``model`` user called ``name``: username and required fields.

    The result suits ``model(**values)``, ``create()``, and the ``create_user()``
    of managers that follow Django's convention (``createsuperuser`` calls it
    the same way). ``name`` must be unique: it also fills every other required
    text field, which may be unique too. Raises :class:`UnbuildableUser`.
    """
    username_field = cast("models.Field[Any, Any]", model._meta.get_field(_username_field(model)))
    values: dict[str, Any] = {username_field.name: _placeholder(model, username_field, name)}
    # The primary key too, unless the database makes it or its default (uuid4) does.
    for field in model._meta.concrete_fields:
        if field.name not in values and _required(field):
            values[field.name] = _placeholder(model, field, name)
    return values


def new_user(model: type[models.Model], name: str, **overrides: Any) -> Any:
    """An unsaved ``model`` user called ``name``, with an unusable password."""
    user = model(**{**user_values(model, name), **overrides})
    if hasattr(user, "set_unusable_password"):
        user.set_unusable_password()
    return user


def update_field(model: type[models.Model]) -> str | None:
    """A text field an update can change: ``first_name`` where the model has one.

    Otherwise the first editable text field that is no key and no login or
    e-mail field (``full_name``, ``last_name``, ...); None when there is none.
    """
    fields = {f.name: f for f in model._meta.concrete_fields}
    if "first_name" in fields and _changeable(model, fields["first_name"]):
        return "first_name"
    return next((name for name, f in fields.items() if _changeable(model, f)), None)


def changed_value(model: type[models.Model], field_name: str, text: str) -> str:
    """``text`` cut to what ``field_name`` holds."""
    max_length = model._meta.get_field(field_name).max_length  # type: ignore[union-attr]
    return text[:max_length] if max_length else text


def groups_field(model: type[models.Model]) -> models.ManyToManyField[Any, Any] | None:
    """The ``groups`` many-to-many field PermissionsMixin gives, or None."""
    try:
        field = model._meta.get_field("groups")
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, models.ManyToManyField) else None


def no_groups_reason(model: type[models.Model]) -> str | None:
    """Why ``user.groups`` cannot be used on ``model``, or None when it can."""
    if groups_field(model) is not None:
        return None
    return f"{model._meta.label} has no groups: it does not use PermissionsMixin"


def _username_field(model: type[models.Model]) -> str:
    name = getattr(model, "USERNAME_FIELD", None)
    if not isinstance(name, str):
        raise UnbuildableUser(f"{model._meta.label} has no USERNAME_FIELD")
    return name


def filled_by_database(field: models.Field[Any, Any]) -> bool:
    """Whether the database makes the value: an auto-increment, a db_default, a generated field."""
    return (
        isinstance(field, AutoFieldMixin)
        or field.has_db_default()
        or getattr(field, "generated", False)
    )


def _required(field: models.Field[Any, Any]) -> bool:
    """Whether a new row needs a value for ``field`` that Django would not give it."""
    if field.null or field.has_default() or field.auto_created or filled_by_database(field):
        return False
    if field.name == "password":  # AbstractBaseUser's: new_user() sets an unusable one
        return False
    # A blank text field gets "" from Django, which the database takes.
    return not field.blank or field.get_default() is None


def _changeable(model: type[models.Model], field: models.Field[Any, Any]) -> bool:
    return (
        isinstance(field, models.CharField | models.TextField)
        and not isinstance(field, models.EmailField)
        and field.editable
        and not (field.primary_key or field.unique or field.choices or field.is_relation)
        and field.name not in {getattr(model, "USERNAME_FIELD", None), _email_field(model)}
        and field.name != "password"
    )


def _email_field(model: type[models.Model]) -> str:
    name = getattr(model, "EMAIL_FIELD", "email")
    return name if isinstance(name, str) else "email"


def _placeholder(model: type[models.Model], field: models.Field[Any, Any], name: str) -> Any:
    """A value of ``field``'s own type for the throwaway user ``name``."""
    where = f"{model._meta.label}.{field.name}"
    if field.is_relation:
        target = field.related_model._meta.label  # type: ignore[union-attr]
        raise UnbuildableUser(
            f"{where} is a required relation to {target} without a default: a throwaway "
            f"user would need a {target} row"
        )
    if field.choices:
        return field.flatchoices[0][0]
    if isinstance(field, models.EmailField):
        return _email(where, name, field.max_length)
    if isinstance(field, models.CharField | models.TextField):
        return name[-field.max_length :] if field.max_length else name
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if field.unique:
        raise UnbuildableUser(
            f"{where} is a unique {type(field).__name__} without a default: no value can be "
            "chosen that is sure to be free"
        )
    value = _value_of_type(field)
    if value is None:
        raise UnbuildableUser(
            f"{where} is a required {type(field).__name__} without a default, and no "
            "placeholder of that type is known"
        )
    return value


def _email(where: str, name: str, max_length: int | None) -> str:
    suffix = f"@{EMAIL_DOMAIN}"
    room = (max_length or 254) - len(suffix)
    if room < 1:
        raise UnbuildableUser(f"{where} holds {max_length} characters: too few for an address")
    return name[-room:] + suffix


def _value_of_type(field: models.Field[Any, Any]) -> Any:
    """A placeholder for a field that is no text and no key, or None when none is known."""
    # Order matters: DateTimeField is a DateField, the integer fields share IntegerField.
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return timezone.localdate()
    placeholders: tuple[tuple[type[models.Field[Any, Any]], Any], ...] = (
        (models.BooleanField, False),
        (models.IntegerField, 0),
        (models.FloatField, 0.0),
        (models.DecimalField, decimal.Decimal(0)),
        (models.TimeField, datetime.time(0)),
        (models.DurationField, datetime.timedelta(0)),
        (models.BinaryField, b""),
        (models.GenericIPAddressField, "192.0.2.1"),  # TEST-NET-1 (RFC 5737)
    )
    if isinstance(field, models.JSONField):
        return {}
    return next((value for kind, value in placeholders if isinstance(field, kind)), None)
