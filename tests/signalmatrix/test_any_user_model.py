"""The matrix under whichever user model is installed: auth.User and each of tests/usermodels.

No ``username``, integer pk or PermissionsMixin is assumed: what a model lacks
shows as n/a with the reason, and everything else runs. A real run's JSON under
each model: tests/system/test_signal_matrix.py.
"""

from __future__ import annotations

import pytest

from signalmatrix.render import WIDTH, render_text
from signalmatrix.services import signal_matrix_run
from tests.helpers.users import bulk_users, create_user, has_field, user_model
from tests.signalmatrix.helpers import (
    CREATING,
    database_contents,
    expected_not_applicable,
    row,
    sent,
)

pytestmark = pytest.mark.any_user_model


def expected_update_field() -> str:
    return {
        "auth.User": "first_name",
        "uuiduser.UUIDUser": "first_name",
        "emailuser.EmailUser": "full_name",
        "strictuser.StrictUser": "tenant",
    }[user_model()._meta.label]


@pytest.fixture
def matrix(db):
    return signal_matrix_run(using="default")


def test_every_operation_runs_and_only_what_the_model_lacks_is_not_applicable(matrix):
    assert matrix.user_model == user_model()._meta.label
    assert [(op.key, op.error) for op in matrix.failed] == []
    unsupported = {op.key: op.unsupported for op in matrix.operations if op.unsupported}
    assert unsupported == expected_not_applicable()


@pytest.mark.parametrize("key", CREATING)
def test_every_creating_operation_sends_post_save_and_makes_a_profile(matrix, key):
    op = row(matrix, key)
    label = user_model()._meta.label
    assert sent(op, "post_save") == [
        {"sender": label, "created": True, "raw": False, "update_fields": None}
    ]
    assert (op.users_created, op.profiles_created, op.profile_created) == (1, 1, True)


def test_the_update_rows_change_a_field_the_model_has_and_say_which(matrix):
    field = expected_update_field()
    op = row(matrix, "save_update_fields")
    assert op.code == f'user.save(update_fields=["{field}"])'
    assert sent(op, "post_save")[0]["update_fields"] == (field,)
    assert row(matrix, "bulk_update").code == f'User.objects.bulk_update(users, ["{field}"])'
    updated = sent(row(matrix, "update_or_create_updated"), "post_save")
    assert field in updated[0]["update_fields"]
    for key in ("bulk_update", "queryset_update"):
        assert row(matrix, key).events == ()


def test_loaddata_sends_raw_saves_and_raw_sql_inserts_into_the_models_table(matrix):
    label = user_model()._meta.label
    loaded = row(matrix, "loaddata")
    assert sent(loaded, "post_save") == [
        {"sender": label, "created": True, "raw": True, "update_fields": None}
    ]
    assert (loaded.users_created, loaded.profile_created) == (1, False)
    raw = row(matrix, "raw_sql")
    assert user_model()._meta.db_table in raw.code
    assert (raw.events, raw.users_created, raw.profile_created) == ((), 1, False)


def test_bulk_creates_and_conflicts_insert_without_signals(matrix):
    for key in ("bulk_create", "bulk_create_ignore_conflicts", "bulk_create_update_conflicts"):
        op = row(matrix, key)
        assert op.events == () and op.users_created >= 1 and op.profile_created is False, key


def test_group_rows_send_m2m_changed_or_are_not_applicable(matrix):
    add = row(matrix, "groups_add")
    if has_field("groups"):
        assert [e["action"] for e in sent(add, "m2m_changed")] == ["pre_add", "post_add"]
        assert matrix.m2m_sender == user_model().groups.through._meta.label
    else:
        assert add.unsupported and add.events == ()
        assert matrix.m2m_sender is None
        # Nobody can listen for a through model that does not exist.
        assert "m2m_changed" not in row(matrix, "save_insert").listened


@pytest.mark.django_db(transaction=True)
def test_the_database_is_unchanged():
    create_user(1, "kept")
    bulk_users(1, "kept-bulk")
    before = database_contents()
    assert not signal_matrix_run(using="default").failed
    assert database_contents() == before


def test_the_text_fits_100_columns(matrix):
    for verbosity in (1, 2):
        lines = list(render_text(matrix, verbosity=verbosity))
        assert max(map(len, lines)) <= WIDTH, max(lines, key=len)
