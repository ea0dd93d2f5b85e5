"""Profiles, their receivers and backfill_profiles, for every user model.

Run under each of tests/usermodels as well (``--ds tests.usermodels.<model>.settings``):
an e-mail login without PermissionsMixin, a UUID pk, a string pk with a required
field. Users come only from tests/helpers/users.py; nothing here assumes a
``username``, an integer pk or an order of pks Python would agree with.
"""

from __future__ import annotations

import json

import pytest
from django.core.management.color import no_style
from django.db import connection

from profiles.backfill import _Batches, profiles_backfill
from profiles.models import Profile, WelcomeMail
from profiles.receivers import WELCOME_MAIL_RECEIVER
from profiles.selectors import users_without_profile_count
from profiles.services import profile_ensure
from profiles.sharding import Shard, user_pk_is_integer
from profiles.sql import in_pk_order
from profiles.welcome.message import recipient, welcome_message
from switches.muting import muted
from tests.helpers.commands import run_command
from tests.helpers.users import bulk_users, create_user, new_user, user_fields, user_model, users
from tests.profiles.coverage import (
    assert_every_user_has_exactly_one_profile,
    json_pk,
    users_with_gaps,
)
from tests.profiles.plans import rows_read

pytestmark = pytest.mark.any_user_model

SERVER_BACKEND = connection.vendor != "sqlite"


# -- the receivers --


@pytest.mark.django_db
def test_save_gives_a_user_a_profile():
    user = create_user(1)
    assert Profile.objects.filter(user=user).count() == 1
    assert str(user.profile) == f"Profile of user #{user.pk}"


@pytest.mark.django_db
def test_create_user_gives_a_user_a_profile():
    user = users().create_user(**user_fields(2))
    assert Profile.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_profile_ensure_is_idempotent():
    [user] = bulk_users(1)
    assert profile_ensure(user=user, using="default") is True
    assert profile_ensure(user=user, using="default") is False
    assert Profile.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_save_gives_a_user_one_pending_welcome_record(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        user = create_user(3)
    assert list(WelcomeMail.objects.values_list("user_id", "status")) == [(user.pk, "pending")]
    assert len(callbacks) == 1  # delivery, after the commit


@pytest.mark.django_db
def test_a_muted_welcome_receiver_suppresses_the_record():
    with muted(WELCOME_MAIL_RECEIVER, reason="any model"):
        user = create_user(5)
    record = WelcomeMail.objects.get(user_id=user.pk)
    assert (record.status, record.reason) == (
        "suppressed",
        f"{WELCOME_MAIL_RECEIVER} muted: any model",
    )


def test_welcome_email_uses_the_models_email_field(monkeypatch):
    """A model whose EMAIL_FIELD is not "email" gets its mail there."""
    monkeypatch.setattr(user_model(), "EMAIL_FIELD", "work_address", raising=False)
    user = new_user(4)
    user.work_address = "work4@example.org"
    assert recipient(user) == "work4@example.org"
    assert welcome_message(user).to == ["work4@example.org"]


# -- the backfill service --


def backfill(**kwargs):
    kwargs.setdefault("batch_size", 7)
    return profiles_backfill(using="default", **kwargs)


@pytest.mark.django_db
def test_backfill_creates_exactly_the_missing_profiles_in_several_batches():
    without = users_with_gaps(60)
    with_one = [create_user(i, "signup") for i in range(3)]  # profiles from the receiver
    profile_ensure(user=without[5], using="default")
    result = backfill()
    assert result.created == len(without) - 1
    assert result.batches == -(-users().count() // 7)  # every user in a batch of 7, none twice
    assert result.stopped is None
    assert result.last_pk == result.max_pk == users().order_by("pk").last().pk
    assert_every_user_has_exactly_one_profile()
    assert {p.user_id for p in Profile.objects.filter(user__in=with_one)} == {
        u.pk for u in with_one
    }
    assert backfill().created == 0
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db
def test_limit_is_exact_and_a_rerun_resumes():
    without = users_with_gaps(45)
    result = backfill(limit=11)
    assert (result.created, result.stopped) == (11, "limit")
    assert Profile.objects.count() == 11
    assert users_without_profile_count(using="default") == len(without) - 11
    assert backfill().created == len(without) - 11
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db
def test_progress_counts_users_and_ends_at_the_total():
    bulk_users(40)
    seen = []
    backfill(batch_size=10, on_batch=lambda done, total: seen.append((done, total)))
    assert seen == [(10, 40), (20, 40), (30, 40), (40, 40)]


@pytest.mark.django_db(transaction=True)  # worker threads use connections of their own
def test_jobs_create_each_profile_once():
    without = users_with_gaps(300)
    create_user(0, "signup")
    seen = []
    result = backfill(
        batch_size=11, jobs=2, on_batch=lambda done, total: seen.append((done, total))
    )
    assert result.jobs == (2 if SERVER_BACKEND else 1)  # SQLite: one writer
    assert result.created == len(without)
    assert result.last_pk == result.max_pk == users().order_by("pk").last().pk
    # Progress: once a batch, never going back, ending at the total.
    assert len(seen) == result.batches
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (users().count(), users().count())
    assert_every_user_has_exactly_one_profile()
    assert backfill(jobs=2).created == 0


@pytest.mark.applies_if(
    user_pk_is_integer(), reason="the pk is not an integer: it has no largest value"
)
@pytest.mark.django_db(transaction=True)  # see the finally: MariaDB's counter is not rolled back
def test_a_user_at_each_end_of_the_pk_range_gets_a_profile():
    """Regression: MariaDB's check of the batch's users computed ``pk + 1``, out of
    range for a BIGINT at its largest value, so every backfill failed."""
    pk_field = user_model()._meta.pk
    low, high = connection.ops.integer_field_range(pk_field.get_internal_type())
    bulk_users(5)
    try:
        users().bulk_create([new_user(1, "edge", pk=low), new_user(2, "edge", pk=high)])
        assert backfill(batch_size=3).created == 7
        assert Profile.objects.filter(user_id__in=[low, high]).count() == 2
        assert_every_user_has_exactly_one_profile()
    finally:
        # The pk counter (InnoDB's, SQLite's sqlite_sequence) now stands at the
        # largest value: no later test could insert a user.
        users().all().delete()
        table = {"table": user_model()._meta.db_table, "column": pk_field.column}
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_by_name_sql(no_style(), [table]):
                cursor.execute(sql)


@pytest.mark.django_db
def test_a_batch_lookup_walks_the_pk_index():
    """Regression: on a table without statistics (just bulk-loaded), PostgreSQL
    planned ``ORDER BY pk LIMIT 2 OFFSET n`` as a scan of the whole range and a
    sort, ten times the time of walking the index."""
    bulk_users(3000)
    walk = _Batches(using="default", batch_size=100, count_users=False, look_ahead=False)
    sql, params = walk.lookup_query(None).query.sql_with_params()  # the first: the whole table
    with in_pk_order(connection), connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            steps = [row[-1] for row in cursor.fetchall()]
            assert not [step for step in steps if "TEMP B-TREE" in step], steps
        else:
            assert rows_read(cursor, sql, params, table=user_model()._meta.db_table) <= 3 * 100


# -- the commands --


@pytest.mark.django_db
def test_command_backfills_then_has_nothing_to_do():
    without = users_with_gaps(30)
    create_user(0, "signup")
    out, err, code = run_command("backfill_profiles", batch_size=4, format="json")
    assert code == 0, err
    data = json.loads(out)
    assert data["created"] == len(without)
    assert data["batches"] == -(-users().count() // 4)
    assert data["last_pk"] == data["max_pk"] == json_pk(users().order_by("pk").last().pk)
    out, _, code = run_command("backfill_profiles")
    assert (out.strip(), code) == ("Nothing to do: every user has a profile.", 0)
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db
def test_check_and_dry_run_count_the_missing_profiles():
    without = users_with_gaps(24)
    create_user(0, "signup")
    out, err, code = run_command("backfill_profiles", "--check")
    assert code == 1 and out == ""
    assert f"{len(without)} user(s) lack a profile" in err
    assert Profile.objects.count() == 1
    out, _, code = run_command("backfill_profiles", dry_run=True, limit=5, format="json")
    assert code == 0
    assert json.loads(out) == {
        "mode": "dry_run",
        "shard": "1/1",
        "users_without_profile": len(without),
        "would_create": 5,
    }
    assert Profile.objects.count() == 1
    run_command("backfill_profiles", batch_size=5)
    out, _, code = run_command("backfill_profiles", "--check")
    assert (code, out.strip()) == (0, "Every user has a profile.")


@pytest.mark.django_db
def test_shard_needs_an_integer_pk():
    bulk_users(10)
    if user_pk_is_integer():
        in_shard = users_without_profile_count(using="default", shard=Shard(1, 2))
        out, err, code = run_command("backfill_profiles", "--shard", "1/2", format="json")
        assert code == 0, err
        assert json.loads(out)["created"] == in_shard
        assert run_command("backfill_profiles", "--shard", "2/2")[2] == 0
        assert_every_user_has_exactly_one_profile()
    else:
        for args in (["--shard", "1/2"], ["--shard", "1/2", "--check"]):
            out, err, code = run_command("backfill_profiles", *args)
            assert (out, code) == ("", 2)
            assert "is not an integer" in err and "--shard" in err
            assert err.strip().count("\n") == 0
        assert Profile.objects.count() == 0
