"""signal_matrix_run: the known rows, measured on whichever backend the suite runs on."""

from __future__ import annotations

from collections.abc import Iterator

import django
import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection, transaction
from django.db.models.signals import post_save

from dbtools.errors import UsageError
from profiles.models import Profile
from profiles.services import profile_ensure
from signalmatrix import operations
from signalmatrix.operations import OPERATIONS, Scene, UnknownOperationError
from signalmatrix.services import signal_matrix_run
from switches.muting import muted
from switches.services import receiver_switches_off
from tests.signalmatrix.helpers import CREATING, database_contents, row, sent

User = get_user_model()

CREATE_PROFILE = "profiles.receivers.create_profile"


@pytest.fixture
def matrix(db):
    return signal_matrix_run(using="default")


def test_it_names_the_backend_and_django(matrix):
    assert matrix.database == "default"
    assert matrix.vendor == connection.vendor
    assert matrix.backend.startswith(connection.display_name + " ")
    assert matrix.django_version == django.get_version()
    assert matrix.user_model == "auth.User"
    assert not matrix.failed


@pytest.mark.parametrize("key", CREATING)
def test_saving_a_new_user_sends_post_save_created_and_makes_a_profile(matrix, key):
    op = row(matrix, key)
    assert sent(op, "pre_save") == [{"sender": "auth.User", "raw": False, "update_fields": None}]
    assert sent(op, "post_save") == [
        {"sender": "auth.User", "created": True, "raw": False, "update_fields": None}
    ]
    assert (op.users_created, op.profiles_created, op.profile_created) == (1, 1, True)


def test_an_update_sends_post_save_not_created_with_its_update_fields(matrix):
    assert sent(row(matrix, "save_update"), "post_save")[0]["created"] is False
    post = sent(row(matrix, "save_update_fields"), "post_save")
    assert post == [
        {"sender": "auth.User", "created": False, "raw": False, "update_fields": ("first_name",)}
    ]
    assert (
        "first_name"
        in sent(row(matrix, "update_or_create_updated"), "post_save")[0]["update_fields"]
    )


def test_get_or_create_finding_the_user_sends_nothing(matrix):
    op = row(matrix, "get_or_create_found")
    assert op.events == () and op.profile_created is None


@pytest.mark.parametrize(
    "key",
    ["bulk_create", "bulk_create_ignore_conflicts", "bulk_create_update_conflicts", "raw_sql"],
)
def test_bulk_inserts_and_raw_sql_send_nothing_and_leave_users_without_profile(matrix, key):
    op = row(matrix, key)
    assert op.unsupported is None  # every backend in CI has update_conflicts
    assert op.events == ()
    assert op.users_created >= 1 and op.profiles_created == 0 and op.profile_created is False


@pytest.mark.parametrize("key", ["bulk_update", "queryset_update"])
def test_bulk_update_and_queryset_update_send_nothing(matrix, key):
    op = row(matrix, key)
    assert op.events == () and op.users_created == 0


def test_loaddata_sends_raw_saves_and_creates_no_profile(matrix):
    op = row(matrix, "loaddata")
    assert sent(op, "pre_save") == [{"sender": "auth.User", "raw": True, "update_fields": None}]
    assert sent(op, "post_save") == [
        {"sender": "auth.User", "created": True, "raw": True, "update_fields": None}
    ]
    assert (op.users_created, op.profiles_created, op.profile_created) == (1, 0, False)


@pytest.mark.parametrize(
    ("key", "actions"),
    [
        ("groups_add", ["pre_add", "post_add"]),
        ("groups_remove", ["pre_remove", "post_remove"]),
        ("groups_set", ["pre_remove", "post_remove", "pre_add", "post_add"]),
        ("groups_clear", ["pre_clear", "post_clear"]),
    ],
)
def test_groups_send_m2m_changed_before_and_after(matrix, key, actions):
    op = row(matrix, key)
    events = sent(op, "m2m_changed")
    assert [e["action"] for e in events] == actions
    assert {e["sender"] for e in events} == {"auth.User_groups"}
    assert {e["model"] for e in events} == {"auth.Group"}
    assert not sent(op, "post_save")


def test_deletes_send_pre_and_post_delete_for_the_user_and_its_cascaded_profile(matrix):
    for key, count in (("delete", 1), ("queryset_delete", 2)):
        op = row(matrix, key)
        for signal in ("pre_delete", "post_delete"):
            senders = [e["sender"] for e in sent(op, signal)]
            assert sorted(senders) == sorted(["auth.User", "profiles.Profile"] * count)
    origins = {e["origin"] for e in sent(row(matrix, "queryset_delete"), "pre_delete")}
    assert origins == {"QuerySet"}


def test_queryset_delete_is_a_fast_delete_only_while_no_receiver_listens(matrix):
    listened = row(matrix, "profile_queryset_delete")
    assert len(sent(listened, "pre_delete")) == len(sent(listened, "post_delete")) == 2
    assert listened.fast_deleted == ()
    unobserved = row(matrix, "profile_queryset_delete_unobserved")
    assert "pre_delete" not in unobserved.listened
    assert unobserved.fast_deleted == ("profiles.Profile",)
    # The users themselves are loaded (their profiles and groups cascade); their
    # profiles are not, while nobody listens for Profile.
    assert row(matrix, "queryset_delete_unobserved").fast_deleted == ("profiles.Profile",)


def test_switched_off_receivers_are_shown_and_measured(db):
    receiver_switches_off(
        names=[CREATE_PROFILE], reason="test", by="test", until=None, using="default"
    )
    matrix = signal_matrix_run(using="default")
    states = {r.name: r.state for r in matrix.receivers}
    assert states == {CREATE_PROFILE: "off", "profiles.receivers.send_welcome_email": "on"}
    save = row(matrix, "save_insert")
    assert sent(save, "post_save")  # the signal is still sent...
    assert save.profile_created is False  # ...and the switched-off receiver did nothing


def test_a_muted_receiver_is_shown_and_measured(db):
    with muted(CREATE_PROFILE):
        matrix = signal_matrix_run(using="default")
    assert {r.name: r.state for r in matrix.receivers}[CREATE_PROFILE] == "muted"
    assert all(row(matrix, key).profile_created is False for key in CREATING)


def test_an_extra_receiver_changes_the_table(db):
    """A receiver that also gives loaddata's users a profile: the loaddata row says so."""

    def profile_for_everyone(sender, instance, created, using, **kwargs):
        if created:
            profile_ensure(user=instance, using=using)

    post_save.connect(profile_for_everyone, sender=User, dispatch_uid="test.everyone")
    try:
        matrix = signal_matrix_run(using="default")
    finally:
        post_save.disconnect(sender=User, dispatch_uid="test.everyone")
    assert row(matrix, "loaddata").profile_created is True
    assert row(matrix, "bulk_create").profile_created is False


def test_a_patched_operation_changes_the_table(db, replace_operation):
    """bulk_create replaced by a loop of save(): the row shows the signals."""

    def saves(scene: Scene) -> Iterator[None]:
        users = [scene.unsaved_user(), scene.unsaved_user()]
        yield
        for user in users:
            user.save(using=scene.using)

    replace_operation("bulk_create", saves)
    op = row(signal_matrix_run(using="default"), "bulk_create")
    assert [e["created"] for e in sent(op, "post_save")] == [True, True]
    assert op.profile_created is True


def test_an_operation_the_backend_lacks_is_marked_unsupported(db, monkeypatch):
    monkeypatch.setattr(connection.features, "supports_update_conflicts", False)
    op = row(signal_matrix_run(using="default"), "bulk_create_update_conflicts")
    assert "supports_update_conflicts is False" in (op.unsupported or "")
    assert op.events == () and op.profile_created is None


def test_a_failing_operation_is_recorded_and_the_others_still_run(db, replace_operation):
    def broken(scene: Scene) -> Iterator[None]:
        yield
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM signalmatrix_no_such_table")

    replace_operation("save_update", broken)
    matrix = signal_matrix_run(using="default")
    assert [op.key for op in matrix.failed] == ["save_update"]
    assert "signalmatrix_no_such_table" in (matrix.failed[0].error or "").lower()
    assert row(matrix, "save_update_fields").events  # the next one ran, on a sound transaction
    others = [op for op in matrix.operations if op.key != "save_update" and not op.unsupported]
    assert all(op.ran for op in others)


@pytest.mark.django_db(transaction=True)
def test_the_database_is_unchanged_and_no_mail_is_sent():
    User.objects.create_user("kept", "kept@example.com")
    User.objects.bulk_create([User(username="kept-without-profile")])
    mail.outbox.clear()
    before = database_contents()
    matrix = signal_matrix_run(using="default")
    assert not connection.in_atomic_block  # a real transaction, really rolled back
    assert database_contents() == before
    assert mail.outbox == []  # the welcome mails were on_commit: never sent
    assert row(matrix, "save_insert").profile_created is True
    assert (matrix.not_rolled_back is None) == (connection.vendor == "sqlite")


@pytest.mark.django_db(transaction=True)
def test_async_operations_run_inside_the_rolled_back_transaction():
    """asave/acreate on another connection would commit (or, on SQLite, wait for the lock)."""
    matrix = signal_matrix_run(using="default")
    for key in ("asave", "acreate"):
        assert row(matrix, key).profile_created is True
    assert not User.objects.filter(username__startswith="signalmatrix-").exists()
    assert not Profile.objects.exists()


def test_it_runs_inside_a_callers_transaction_and_leaves_it_usable(db):
    with transaction.atomic():
        signal_matrix_run(using="default")
        User.objects.create_user("after")
    assert User.objects.filter(username="after").exists()


def test_every_operation_of_the_issue_is_in_the_matrix():
    assert [op.key for op in operations.OPERATIONS] == [
        "save_insert",
        "save_update",
        "save_update_fields",
        "create",
        "create_user",
        "get_or_create_created",
        "get_or_create_found",
        "update_or_create_created",
        "update_or_create_updated",
        "bulk_create",
        "bulk_create_ignore_conflicts",
        "bulk_create_update_conflicts",
        "bulk_update",
        "queryset_update",
        "delete",
        "queryset_delete",
        "queryset_delete_unobserved",
        "profile_queryset_delete",
        "profile_queryset_delete_unobserved",
        "loaddata",
        "asave",
        "acreate",
        "groups_add",
        "groups_remove",
        "groups_set",
        "groups_clear",
        "raw_sql",
    ]


def test_a_user_model_no_user_can_be_built_for_makes_rows_not_applicable_not_failed(
    db, monkeypatch
):
    from signalmatrix.users import UnbuildableUser

    def unbuildable(*args, **kwargs):
        raise UnbuildableUser("auth.User.team is a required relation to teams.Team")

    monkeypatch.setattr("signalmatrix.operations.user_values", unbuildable)
    monkeypatch.setattr("signalmatrix.operations.new_user", unbuildable)
    matrix = signal_matrix_run(using="default")
    assert matrix.failed == ()
    reasons = {op.unsupported for op in matrix.operations}
    assert reasons == {
        "no user of this model can be built: auth.User.team is a required relation to teams.Team"
    }


@pytest.mark.django_db
def test_operations_runs_only_those_named_in_the_order_of_the_table():
    result = signal_matrix_run(
        using="default", operations=["bulk_create", "save_insert", "bulk_create"]
    )
    assert [op.key for op in result.operations] == ["save_insert", "bulk_create"]
    assert row(result, "bulk_create").profile_created is False


def test_an_unknown_operation_is_refused_before_anything_runs():
    # No database access is allowed here: the keys are checked first.
    with pytest.raises(UnknownOperationError) as refused:
        signal_matrix_run(using="default", operations=["save", "bulk_create", "bulk_craete"])
    message = str(refused.value)
    assert isinstance(refused.value, UsageError) and "\n" not in message
    assert message.startswith(
        "unknown operation 'save' (closest: save_insert, save_update, save_update_fields); "
        "unknown operation 'bulk_craete' (closest: bulk_create"
    )
    assert message.endswith(f"the operations are: {', '.join(o.key for o in OPERATIONS)}.")
