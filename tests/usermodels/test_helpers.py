"""The user builders in tests/helpers/users.py work for every user model."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.helpers.users import bulk_users, login_name, user_fields, users

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]


def test_bulk_users_are_read_back_with_their_primary_keys():
    made = bulk_users(3)
    assert len(made) == 3
    assert {u.get_username() for u in made} == {login_name(i, "bulk") for i in range(3)}
    assert users().filter(pk__in=[u.pk for u in made]).count() == 3


def test_every_required_field_gets_a_value():
    fields = user_fields(7)
    model = users().model
    assert fields[model.USERNAME_FIELD] == login_name(7)
    required = [
        f.name
        for f in model._meta.concrete_fields
        if not (f.null or f.blank or f.has_default() or f.auto_created) and f.name != "password"
    ]
    assert set(required) <= set(fields)


def test_the_settings_module_names_the_active_model():
    assert users().model._meta.label == settings.AUTH_USER_MODEL
