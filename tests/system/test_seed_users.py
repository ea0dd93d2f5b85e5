"""seed_users in real processes: the exit codes cron sees, a SIGTERM, and runs side by side.

Each run holds a lock of its own while its process lives. Races are staged on
the database (committed rows, a run's lock) and on the processes, never on a
fixed sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from contextlib import ExitStack
from typing import Any

import pytest

from dbtools.locks import LockHeld, database_lock
from profiles.models import WelcomeMail
from profiles.receivers import WELCOME_MAIL_RECEIVER
from seeding.models import SeededUser, SeedRun
from seeding.runs import run_lock
from tests.helpers.commands import unreachable_database_url
from tests.helpers.processes import completed, spawned, wait_until
from tests.helpers.seeding import username_values
from tests.helpers.smtp import refusing_environment
from tests.helpers.users import users

DEBUG_OFF = {"DEBUG": "0", "SECRET_KEY": "x" * 60}


def committed(number: int) -> int:
    """The users run ``number`` has committed."""
    return SeededUser.objects.filter(run__number=number).count()


def lock_free(number: int) -> bool:
    """Whether run ``number``'s lock can be taken now: its process is gone, or never was."""
    try:
        with database_lock(run_lock(number), using="default"):
            return True
    except LockHeld:
        return False


def summary(proc: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    """The JSON summary of a spawned ``--format json`` run that succeeds."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


# -- exit codes --


def test_debug_off_refuses_without_force(manage):
    refused = manage("seed_users", "10", env=DEBUG_OFF)
    assert refused.returncode == 77
    assert "DEBUG off" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    # Refused before the database is touched: a server that is down changes nothing.
    down = manage("seed_users", "10", env={**DEBUG_OFF, "DATABASE_URL": unreachable_database_url()})
    assert (down.returncode, down.stderr) == (77, refused.stderr)


@pytest.mark.django_db(transaction=True)
def test_debug_off_with_force_seeds(manage):
    result = manage("seed_users", "10", "--force", env=DEBUG_OFF)
    assert result.returncode == 0, result.stderr
    assert users().count() == 10


# -- a signal --


@pytest.mark.django_db(transaction=True)
def test_sigterm_keeps_committed_batches_exits_143_and_a_rerun_resumes():
    args = ("seed_users", "200000", "--seed", "31", "--batch-size", "500")
    with spawned(*args, "--format", "json") as proc:
        wait_until(lambda: users().count() >= 1000, proc)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert time.monotonic() - sent < 5  # the batch in flight, not the whole run
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    created = users().count()
    assert 1000 <= created < 200_000
    assert created % 500 == 0  # no half batch
    assert json.loads(out)["created"] == created
    assert "interrupted by SIGTERM" in err and str(created) in err
    rerun = completed(*args)  # the same --seed resumes the run
    assert rerun.returncode == 0, rerun.stderr
    assert users().count() == 200_000


# -- runs side by side --


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_never_collide():
    same = ("seed_users", "3000", "--seed", "1", "--batch-size", "100", "--format", "json")
    with spawned(*same) as first, spawned(*same) as second:
        results = [first.communicate(timeout=120), second.communicate(timeout=120)]
        codes = [first.returncode, second.returncode]
    assert codes == [0, 0], results
    runs = {json.loads(out)["run"] for out, _ in results}
    assert len(runs) == 2
    assert users().count() == 6000
    assert users().values("username").distinct().count() == 6000
    assert users().values("email").distinct().count() == 6000


COUNT = 200_000
SAME_ARGUMENTS = ("seed_users", str(COUNT), "--seed", "41", "--format", "json")


@pytest.mark.django_db(transaction=True)
def test_a_run_in_progress_is_never_resumed_and_a_dead_one_is():
    """The slow run's --batch-size is 500 times smaller than the fast runs': the same
    users (the batch size changes nothing about them), at a small fraction of the
    speed, so it is still inserting while the others start and end."""
    with ExitStack() as processes:

        def start(batch_size):
            return processes.enter_context(
                spawned(*SAME_ARGUMENTS, "--batch-size", str(batch_size))
            )

        fast = start(batch_size=5000)
        wait_until(lambda: committed(1) >= 5000, fast, timeout=120)
        slow = start(batch_size=10)  # same arguments, while run 1 is inserting
        wait_until(lambda: committed(2) >= 10, fast, slow, timeout=120)
        first = summary(fast)
        assert (first["run"], first["created"]) == (1, COUNT)

        # Run 2 is still inserting, and nothing else holds a lock for this seed.
        third = start(batch_size=5000)
        wait_until(lambda: committed(3) >= 5000, slow, third, timeout=120)
        slow.kill()
        slow.communicate(timeout=30)
        left_at = committed(2)
        assert 0 < left_at < COUNT
        wait_until(lambda: lock_free(2), timeout=120)  # the server has noticed the killed session
        resumer = start(batch_size=5000)
        results = [summary(third), summary(resumer)]

    # A commit the killed run had sent may land after left_at was read (its batch and its
    # lock are on two connections): the resumer starts from what the database holds then.
    resumed_after = results[1]["resumed_after"]
    assert left_at <= resumed_after < COUNT
    assert [(r["run"], r["resumed_after"], r["created"]) for r in results] == [
        (3, 0, COUNT),
        (2, resumed_after, COUNT - resumed_after),
    ]
    assert [
        (r.number, r.created, r.finished_at is not None) for r in SeedRun.objects.order_by("number")
    ] == [(1, COUNT, True), (2, COUNT, True), (3, COUNT, True)]
    assert users().count() == len(username_values()) == 3 * COUNT


@pytest.mark.django_db(transaction=True)
def test_welcome_mails_of_a_save_run_go_to_files_and_never_into_the_output(tmp_path):
    """With DEBUG on and no EMAIL_HOST (a development checkout), the welcome mails of
    users made through save() are files in EMAIL_FILE_PATH: stdout stays one JSON line."""
    mail = {"EMAIL_FILE_PATH": str(tmp_path), "EMAIL_BACKEND": None, "EMAIL_HOST": None}
    result = completed("seed_users", "20", "--via", "save", "--format", "json", env=mail)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] == 20  # the whole of stdout is the JSON
    assert "Subject:" not in result.stdout + result.stderr
    messages = "".join(path.read_text() for path in tmp_path.iterdir())
    assert messages.count("Subject: Welcome!") == 20
    data = json.loads(result.stdout)
    assert (data["welcome_records_pending"], data["welcome_records_suppressed"]) == (20, 0)
    assert (data["welcome_mails_sent"], data["welcome_mails_pending"]) == (20, 0)
    assert data["mail_destination"] == f"files in {tmp_path}"
    text = completed("seed_users", "5", "--via", "save", env=mail)
    assert text.returncode == 0, text.stderr
    assert (
        "Welcome mails: 5 record(s) created, 5 pending and 0 suppressed; the run's mails now "
        f"5 sent, 0 pending, 0 failed; mail goes to files in {tmp_path}"
    ) in text.stdout
    assert "still pending" not in text.stdout


@pytest.mark.django_db(transaction=True)
def test_with_the_mail_server_down_a_save_run_exits_0_and_says_the_mails_are_pending():
    """Users are created and committed; their records stay pending for 'welcome_mails send'."""
    down = {**DEBUG_OFF, **refusing_environment()}
    result = completed("seed_users", "30", "--via", "save", "--force", "--format", "json", env=down)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["created"] == 30 and users().count() == 30
    assert (data["welcome_records_pending"], data["welcome_mails_pending"]) == (30, 30)
    assert data["welcome_mails_sent"] == 0
    assert data["mail_destination"].startswith("SMTP 127.0.0.1:")
    assert WelcomeMail.objects.exclude(status="sent").count() == 30
    text = completed("seed_users", "10", "--via", "save", "--force", env=down)
    assert text.returncode == 0, text.stderr
    assert "10 of this run's welcome mail(s) are still pending" in text.stdout
    assert "'manage.py welcome_mails send' delivers them" in text.stdout
    assert "Traceback" not in text.stderr


@pytest.mark.django_db(transaction=True)
def test_a_muted_bulk_run_writes_suppressed_records_and_a_plain_one_none(manage):
    muted = manage("seed_users", "40", "--mute", WELCOME_MAIL_RECEIVER, "--format", "json")
    assert muted.returncode == 0, muted.stderr
    assert json.loads(muted.stdout)["welcome_records_suppressed"] == 40
    plain = manage("seed_users", "25")
    assert plain.returncode == 0, plain.stderr
    assert "'manage.py welcome_mails sync'" in plain.stdout
    assert (
        WelcomeMail.objects.filter(status="suppressed").count() == WelcomeMail.objects.count() == 40
    )
