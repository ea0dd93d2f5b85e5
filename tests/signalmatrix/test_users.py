"""signalmatrix.users: throwaway users built from a model's own fields, or the reason why not."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models
from django.test.utils import isolate_apps

from signalmatrix.users import (
    UnbuildableUser,
    new_user,
    no_groups_reason,
    update_field,
    user_values,
)

NAME = "signalmatrix-0123abcd-7"

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def isolated():
    with isolate_apps("signalmatrix"):
        yield


def model_class(name: str, base: type, **attributes: object) -> type:
    meta = type("Meta", (), {"app_label": "signalmatrix"})
    return type(name, (base,), {"__module__": __name__, "Meta": meta, **attributes})


def user_class(name: str, username_field: str = "login", **fields: models.Field[Any, Any]) -> type:
    return model_class(name, AbstractBaseUser, USERNAME_FIELD=username_field, **fields)


def test_the_login_name_goes_into_the_username_field_and_an_address_into_an_email_one():
    model = user_class("EmailLogin", "email", email=models.EmailField(unique=True))
    assert user_values(model, NAME) == {"email": f"{NAME}@example.com"}
    short = user_class("Short", "email", email=models.EmailField(max_length=20))
    assert user_values(short, NAME)["email"] == "23abcd-7@example.com"  # the unique end kept


def test_a_uuid_key_comes_from_its_default_and_a_string_key_that_is_the_username_is_the_name():
    uuids = user_class(
        "UUIDKey",
        id=models.UUIDField(primary_key=True, default=uuid.uuid4),
        login=models.CharField(max_length=150, unique=True),
    )
    assert user_values(uuids, NAME) == {"login": NAME}
    first, second = new_user(uuids, NAME), new_user(uuids, NAME + "x")
    assert isinstance(first.pk, uuid.UUID) and first.pk != second.pk
    handle = user_class(
        "Handle", "handle", handle=models.CharField(max_length=12, primary_key=True)
    )
    assert user_values(handle, NAME) == {"handle": NAME[-12:]}


def test_required_fields_get_a_placeholder_of_their_type_and_length():
    model = user_class(
        "Strict",
        login=models.CharField(max_length=150, unique=True),
        tenant=models.CharField(max_length=5),
        notes=models.TextField(),
        plan=models.CharField(max_length=10, choices=[("gold", "Gold"), ("free", "Free")]),
        seats=models.PositiveIntegerField(),
        verified=models.BooleanField(),
        born=models.DateField(),
        optional=models.CharField(max_length=5, blank=True),
        nullable=models.IntegerField(null=True),
        defaulted=models.IntegerField(default=3),
    )
    values = user_values(model, NAME)
    assert values["tenant"] == NAME[-5:] and values["notes"] == NAME
    assert (values["plan"], values["seats"], values["verified"]) == ("gold", 0, False)
    assert values["born"] is not None
    assert not {"optional", "nullable", "defaulted", "password"} & set(values)
    user = new_user(model, NAME)
    assert not user.has_usable_password()


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        (models.ForeignKey("Other", on_delete=models.CASCADE), "a required relation to"),
        (models.IntegerField(unique=True), "a unique IntegerField without a default"),
        (models.EmailField(max_length=10, unique=True), "too few for an address"),
    ],
)
def test_a_field_no_value_can_be_invented_for_is_named(field, reason):
    model_class("Other", models.Model)
    model = user_class("Unbuildable", login=models.CharField(max_length=150), extra=field)
    with pytest.raises(UnbuildableUser, match=f"signalmatrix.Unbuildable.extra .*{reason}"):
        user_values(model, NAME)


def test_the_update_field_is_first_name_else_another_plain_text_field_else_none():
    named = user_class(
        "Named",
        login=models.CharField(max_length=150),
        full_name=models.CharField(max_length=150, blank=True),
        first_name=models.CharField(max_length=150, blank=True),
    )
    assert update_field(named) == "first_name"
    full = user_class(
        "Full",
        "email",
        email=models.EmailField(unique=True),
        code=models.CharField(max_length=8, unique=True),
        full_name=models.CharField(max_length=150, blank=True),
    )
    assert update_field(full) == "full_name"
    bare = user_class("Bare", "email", email=models.EmailField(unique=True))
    assert update_field(bare) is None


def test_a_model_without_permissions_mixin_has_no_groups_and_says_so():
    model = user_class("NoGroups", login=models.CharField(max_length=150))
    assert no_groups_reason(model) == (
        "signalmatrix.NoGroups has no groups: it does not use PermissionsMixin"
    )
