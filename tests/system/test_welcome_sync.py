"""welcome_mails sync in real processes: the run lock, and SIGTERM mid-run."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection

from dbtools.locks import LockHeld, database_lock
from profiles import sql
from profiles.models import WelcomeMail
from profiles.welcome.records import pending_values
from tests.helpers.locking import lock_view_interval, other_connection, some_session_waits
from tests.helpers.processes import spawned, wait_until
from tests.helpers.users import bulk_users, users

# A real process sees only committed users.
pytestmark = pytest.mark.django_db(transaction=True)

CUTOFF = datetime(2024, 6, 1, tzinfo=timezone.utc)


def lock_held(name: str = "welcome_mails_sync") -> bool:
    try:
        with database_lock(name, using="default"):
            return False
    except LockHeld:
        return True


def assert_every_user_has_exactly_one_record():
    every = set(users().values_list("pk", flat=True))
    assert set(WelcomeMail.objects.values_list("user_id", flat=True)) == every
    assert WelcomeMail.objects.count() == len(every)


def test_a_second_run_exits_75_while_the_first_holds_the_lock(manage):
    made = bulk_users(300)
    contested = made[5]
    patient = {"DATABASE_LOCK_TIMEOUT_SECONDS": "120"}
    with other_connection(autocommit=False) as other:
        with other.cursor() as cursor:  # a receiver's record, not yet committed
            cursor.execute(
                *sql.insert_missing_sql(
                    other,
                    values=pending_values(),
                    first_pk=contested.pk,
                    last_pk=contested.pk,
                    model=WelcomeMail,
                )
            )
        args = ["welcome_mails", "sync", "--jobs", "1", "--batch-size", "100", "--format", "json"]
        with spawned(*args, env=patient) as first:
            # It holds the run lock, and its first batch waits for the receiver's row.
            wait_until(
                lambda: lock_held() and some_session_waits(connection),
                first,
                interval=lock_view_interval(connection),
            )
            second = manage("welcome_mails", "sync", timeout=60)
            assert second.returncode == 75, second.stderr
            assert second.stderr.strip().count("\n") == 0
            assert "another welcome_mails sync run holds the lock" in second.stderr
            started = time.monotonic()
            waited = manage("welcome_mails", "sync", "--wait", "1", timeout=60)
            assert waited.returncode == 75 and time.monotonic() - started >= 1
            other.commit()
            out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert json.loads(out)["created"] == 299  # the receiver's record is not counted
    assert not lock_held()
    rerun = manage("welcome_mails", "sync", timeout=60)
    assert (rerun.returncode, rerun.stdout.strip()) == (
        0,
        "Nothing to do: every user has a welcome-mail record.",
    )
    assert_every_user_has_exactly_one_record()


def test_sigterm_finishes_the_batch_in_flight_and_a_rerun_completes(manage):
    made = bulk_users(40000)
    half = len(made) // 2
    users().filter(pk__in=[u.pk for u in made[:half]]).update(
        date_joined=CUTOFF - timedelta(days=1)
    )
    users().filter(pk__in=[u.pk for u in made[half:]]).update(
        date_joined=CUTOFF + timedelta(days=1)
    )
    env = {"WELCOME_MAIL_SINCE": CUTOFF.isoformat()}
    args = ["welcome_mails", "sync", "--batch-size", "100", "--format", "json", "--jobs", "1"]
    with spawned(*args, env=env) as proc:
        wait_until(lambda: WelcomeMail.objects.count() >= 300, proc)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert time.monotonic() - sent < 5  # the batch in flight, not the whole run
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "interrupted after creating" in err and "welcome-mail record(s)" in err
    assert "run again" in err
    reported = json.loads(out)
    assert reported["stopped"] == "signal"
    assert reported["created"] == WelcomeMail.objects.count() < 40000
    assert reported["pending"] + reported["suppressed"] == reported["created"]
    assert WelcomeMail.objects.count() % 100 == 0  # whole batches only
    rerun = manage("welcome_mails", "sync", "--format", "json", env=env, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["created"] == 40000 - reported["created"]
    assert_every_user_has_exactly_one_record()
    assert WelcomeMail.objects.filter(status="suppressed").count() == half
    assert WelcomeMail.objects.filter(status="pending").count() == 40000 - half
