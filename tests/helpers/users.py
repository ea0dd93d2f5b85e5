"""Test users for whichever user model is active: never ``username=``, never integer pks.

Every required field gets a value, so the same test runs under ``auth.User``
and each model in ``tests/usermodels`` (tests marked ``any_user_model``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import FieldDoesNotExist
from django.core.management.color import no_style
from django.db import connections, models


def user_model() -> Any:
    return get_user_model()


def users(using: str = "default") -> Any:
    """The user model's default manager on ``using``."""
    return user_model()._default_manager.db_manager(using)


def login_name(i: int, prefix: str = "user") -> str:
    """The i-th user's value of USERNAME_FIELD (an address where the field is an EmailField)."""
    field = user_model()._meta.get_field(user_model().USERNAME_FIELD)
    return f"{prefix}{i}@example.com" if isinstance(field, models.EmailField) else f"{prefix}{i}"


def user_fields(i: int, prefix: str = "user") -> dict[str, Any]:
    """Values for the i-th user: the username field, the e-mail field, every other required one."""
    model = user_model()
    values: dict[str, Any] = {model.USERNAME_FIELD: login_name(i, prefix)}
    values.setdefault(model.get_email_field_name(), f"{prefix}{i}@example.com")
    for field in model._meta.concrete_fields:
        required = not (field.null or field.blank or field.has_default() or field.auto_created)
        if required and field.name not in values and field.name != "password":
            values[field.name] = f"{prefix[:8]}{i}"[: field.max_length or None]
    return {name: value for name, value in values.items() if has_field(name, model=model)}


def new_user(i: int, prefix: str = "user", **overrides: Any) -> Any:
    """An unsaved user with an unusable password."""
    user = user_model()(**{**user_fields(i, prefix), **overrides})
    user.set_unusable_password()
    return user


def create_user(i: int, prefix: str = "user", using: str = "default", **overrides: Any) -> Any:
    """A user saved through save(): post_save fires, as for a sign-up."""
    user = new_user(i, prefix, **overrides)
    user.save(using=using)
    return user


def bulk_users(
    count: int,
    prefix: str = "bulk",
    start: int = 0,
    using: str = "default",
    *,
    start_pk: int | None = None,
) -> list[Any]:
    """``count`` users inserted with bulk_create (no signal fires), read back with their pks,
    sorted by pk. ``start_pk``: integer keys from it on, as a fixture brings them."""
    model = user_model()
    manager = model._default_manager.db_manager(using)
    # One unusable password for all: hashing one per user costs more than the insert.
    password = make_password(None)
    made = [model(**user_fields(i, prefix), password=password) for i in range(start, start + count)]
    if start_pk is not None:
        for offset, user in enumerate(made):
            user.pk = start_pk + offset
    manager.bulk_create(made, batch_size=1000)
    if start_pk is not None:
        _reset_sequences(model, using)
    # in_bulk reads in slices: SQLite binds at most 32766 values in one statement.
    found = manager.in_bulk([u.get_username() for u in made], field_name=model.USERNAME_FIELD)
    return sorted(found.values(), key=lambda user: user.pk)


def _reset_sequences(model: Any, using: str) -> None:
    """As loaddata does after explicit pks: PostgreSQL's sequence would hand them out again."""
    connection = connections[using]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [model]):
            cursor.execute(sql)


def has_field(name: str, *, model: Any = None) -> bool:
    """Whether ``model`` (the installed user model unless given) has the field ``name``."""
    try:
        (model or user_model())._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True
