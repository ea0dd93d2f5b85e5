from __future__ import annotations

import io
import itertools
import json

import django
import pytest
from click.testing import CliRunner
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction

from commands.management.commands import seed_users
from profiles import receivers
from profiles.models import Profile, WelcomeMail
from tests.helpers.commands import run_command

WELCOME = receivers.WELCOME_MAIL_RECEIVER

User = get_user_model()


@pytest.fixture(autouse=True)
def debug_on(settings):
    settings.DEBUG = True  # seed_users refuses with DEBUG off; the test runner turns it off


@pytest.mark.django_db
def test_bulk_summary_names_the_fix():
    out, err, code = run_command("seed_users", 300, seed=1, batch_size=64)
    assert code == 0, err
    assert "Created 300 user(s) via bulk insert" in out
    assert "post_save did not fire" in out and "backfill_profiles" in out
    assert "no welcome-mail record" in out and "'manage.py welcome_mails sync'" in out
    assert "0 profile(s) created by receivers, 300 of the run's users left without one." in out
    assert (
        "Welcome mails: 0 record(s) created, 0 pending and 0 suppressed; "
        "300 of the run's users left without one."
    ) in out
    assert "in the database" not in out  # a count over the whole table: -v 2 only
    assert User.objects.count() == 300 and Profile.objects.count() == 0
    assert not WelcomeMail.objects.exists()


@pytest.mark.django_db
def test_verbosity_2_adds_the_whole_tables_users_without_a_profile_or_record():
    run_command("seed_users", 30, seed=1, via="save")
    out, err, code = run_command("seed_users", 20, "-v", "2", seed=2)
    assert code == 0, err
    assert (
        "0 profile(s) created by receivers, 20 of the run's users left without one; "
        "20 user(s) in the database without a profile."
    ) in out
    assert (
        "20 of the run's users left without one; 20 user(s) in the database without a record."
        in out
    )


@pytest.mark.django_db
def test_save_summary_counts_profiles_and_welcome_records(settings, tmp_path):
    backend = "django.core.mail.backends.filebased.EmailBackend"
    if django.VERSION >= (6, 1):  # MAILERS replaces EMAIL_BACKEND
        options = {"file_path": str(tmp_path)}
        settings.MAILERS = {"default": {"BACKEND": backend, "OPTIONS": options}}
    else:
        settings.EMAIL_BACKEND, settings.EMAIL_FILE_PATH = backend, str(tmp_path)
    out, _, code = run_command("seed_users", "40", "--via", "save", "--seed", "1")
    assert code == 0
    assert "40 profile(s) created by receivers" in out
    assert "post_save did not fire" not in out
    assert Profile.objects.count() == 40
    # The test's transaction never commits, so no delivery ran: all still pending.
    assert (
        "Welcome mails: 40 record(s) created, 40 pending and 0 suppressed; the run's mails "
        f"now 0 sent, 40 pending, 0 failed; mail goes to files in {tmp_path}; "
        "0 of the run's users left without one."
    ) in out
    assert "40 of this run's welcome mail(s) are still pending" in out
    assert "'manage.py welcome_mails send' delivers them" in out
    assert WelcomeMail.objects.filter(status="pending").count() == 40


@pytest.mark.django_db
def test_json_output_carries_the_figures():
    out, _, code = run_command("seed_users", 50, via="save", format="json", seed=5)
    data = json.loads(out)
    assert code == 0
    assert data["created"] == 50 and data["via"] == "save" and data["seed"] == 5
    assert data["profiles_created"] == 50 and data["run_users_without_profile"] == 0
    assert data["users_without_profile"] is data["users_without_welcome_mail"] is None  # -v 2
    assert data["users_per_second"] > 0 and data["interrupted_by"] is None
    assert (data["welcome_records_pending"], data["welcome_records_suppressed"]) == (50, 0)
    assert data["run_users_without_welcome_mail"] == 0
    assert (data["welcome_mails_sent"], data["welcome_mails_pending"]) == (0, 50)
    assert data["welcome_mails_failed"] == 0
    assert isinstance(data["mail_destination"], str)


@pytest.mark.django_db
def test_json_of_a_bulk_run_has_no_delivery_figures():
    data = json.loads(run_command("seed_users", 20, "-v", "2", format="json")[0])
    assert (data["welcome_records_pending"], data["welcome_records_suppressed"]) == (0, 0)
    assert data["run_users_without_welcome_mail"] == data["users_without_welcome_mail"] == 20
    assert data["run_users_without_profile"] == data["users_without_profile"] == 20
    assert data["welcome_mails_sent"] is data["mail_destination"] is None


@pytest.mark.django_db
def test_random_seed_is_reported_so_a_run_can_be_repeated():
    out, _, _ = run_command("seed_users", 5, format="json")
    assert isinstance(json.loads(out)["seed"], int)


@pytest.mark.django_db
def test_verbosity_zero_is_silent_and_output_never_shows_personal_data(tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text("hunter2-long-password\n")
    out, err, code = run_command("seed_users", 20, verbosity=0, password_file=str(password_file))
    assert (out, err, code) == ("", "", 0)
    out, err, _ = run_command("seed_users", 20, password_file=str(password_file))
    everything = out + err
    for user in User.objects.all():
        assert user.username not in everything
        assert user.email not in everything
        assert user.password not in everything
    assert "hunter2" not in everything
    assert User.objects.first().check_password("hunter2-long-password")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0"], "COUNT"),
        (["-5"], "-5"),
        (["many"], "COUNT"),
        (["10", "--batch-size", "0"], "--batch-size"),
        (["10", "--locale", "xx_XX"], "unknown Faker locale"),
        (["10", "--password-file", "/nonexistent/pw"], "--password-file"),
        (["10", "--via", "copy"], "--via"),
        (["10", "--password", "a", "--password-file", __file__], "not both"),
        (["10", "--seed", str(2**63)], "--seed"),
        (["10", "--field", "first_name"], "NAME=VALUE"),
    ],
)
def test_bad_usage_exits_2_and_writes_nothing(args, message):
    _, err, code = run_command("seed_users", *args)
    assert code == 2, err
    assert message in err
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_dry_run_writes_nothing():
    out, _, code = run_command("seed_users", 100, dry_run=True)
    assert code == 0 and "Dry run" in out
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_click_runner_invokes_seed_users():
    result = CliRunner().invoke(seed_users.command, ["25", "--seed", "3", "--skip-checks"])
    assert result.exit_code == 0, result.output
    assert User.objects.count() == 25
    bad = CliRunner().invoke(seed_users.command, ["0"])
    assert bad.exit_code == 2


@pytest.mark.django_db
def test_debug_off_seeds_only_with_force_and_a_dry_run_needs_none(settings):
    settings.DEBUG = False
    _, err, code = run_command("seed_users", 10)
    assert code == 77 and "DEBUG off" in err and "--force" in err
    assert run_command("seed_users", 10, "--dry-run")[2] == 0
    assert run_command("seed_users", 10, force=True)[2] == 0
    assert User.objects.count() == 10


@pytest.mark.django_db
@pytest.mark.parametrize(("verbosity", "shown"), [(1, True), (0, False)])
def test_progress_bar_only_on_a_terminal(verbosity, shown):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    call_command(
        "seed_users", 300, batch_size=100, stdout=io.StringIO(), stderr=err, verbosity=verbosity
    )
    assert ("Seeding users" in err.getvalue()) is shown


@pytest.mark.django_db
@pytest.mark.parametrize(("mute", "status"), [([], "pending"), ([WELCOME], "suppressed")])
def test_mute_switches_a_receiver_off_for_this_run_only(
    mute, status, django_capture_on_commit_callbacks
):
    args = [arg for name in mute for arg in ("--mute", name)]
    with django_capture_on_commit_callbacks() as callbacks:
        out, err, code = run_command("seed_users", 30, "--via", "save", "--batch-size", 10, *args)
    assert code == 0, err
    assert Profile.objects.count() == 30  # the profile receiver stays on
    assert list(WelcomeMail.objects.values_list("status", flat=True).distinct()) == [status]
    assert WelcomeMail.objects.count() == 30
    assert bool(callbacks) is not bool(mute)  # a delivery enqueued, none when muted
    created = "0 pending and 30 suppressed" if mute else "30 pending and 0 suppressed"
    assert f"Welcome mails: 30 record(s) created, {created}" in out
    after = User.objects.create_user("after", "after@example.com")
    assert WelcomeMail.objects.get(user=after).status == "pending"  # muted only during the run


@pytest.mark.django_db
def test_a_muted_run_says_what_muted_it_in_each_record():
    out, _, code = run_command("seed_users", 5, "--via", "save", format="json", mute=[WELCOME])
    assert code == 0
    run = json.loads(out)["run"]
    reasons = set(WelcomeMail.objects.values_list("reason", flat=True))
    assert reasons == {f"{WELCOME} muted: seed_users --mute (seed run {run})"}


@pytest.mark.django_db
def test_bulk_with_the_welcome_receiver_muted_writes_suppressed_records():
    out, err, code = run_command("seed_users", 120, "--batch-size", 50, mute=[WELCOME], seed=4)
    assert code == 0, err
    assert "Welcome mails: 120 record(s) created, 0 pending and 120 suppressed" in out
    assert "no profile:" in out and "welcome_mails sync" not in out
    assert WelcomeMail.objects.filter(status="suppressed").count() == User.objects.count() == 120
    record = WelcomeMail.objects.first()
    assert record.reason == f"{WELCOME} muted: seed_users --mute (seed run 1)"
    assert (record.attempts, record.message_id, record.sent_at) == (0, "", None)
    assert record.due_at == record.created_at is not None
    assert Profile.objects.count() == 0
    # Another receiver muted: a bulk run writes no records.
    run_command("seed_users", 10, mute=["profiles.receivers.create_profile"], seed=5)
    assert WelcomeMail.objects.count() == 120


@pytest.mark.django_db
def test_unknown_receiver_to_mute_exits_2_with_suggestions():
    _, err, code = run_command("seed_users", 10, mute=["profiles.receivers.send_welcom_email"])
    assert code == 2
    assert "profiles.receivers.send_welcome_email" in err
    assert User.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_summary_reads_the_runs_mails_as_delivery_left_them(monkeypatch):
    """After the run: what delivery did, here a stand-in that sends every other user's."""
    calls = itertools.count()

    def deliver_every_other(*, user_pk, using):
        if next(calls) % 2 == 0:
            sent = WelcomeMail.objects.using(using).filter(user_id=user_pk)
            transaction.on_commit(lambda: sent.update(status="sent"), using=using)

    monkeypatch.setattr(receivers, "deliver_after_commit", deliver_every_other)
    out, err, code = run_command("seed_users", 40, "--via", "save", "--batch-size", 10)
    assert code == 0, err
    assert "the run's mails now 20 sent, 20 pending, 0 failed" in out
    assert "20 of this run's welcome mail(s) are still pending" in out


@pytest.mark.django_db(transaction=True)
def test_streams_are_reported_and_only_postgresql_writes_on_more_than_one():
    out, err, code = run_command("seed_users", 30, "--streams", "2", format="json", batch_size=10)
    assert code == 0, err
    assert json.loads(out)["streams"] == (2 if connection.vendor == "postgresql" else 1)
    out, _, _ = run_command("seed_users", 30, "--streams", "2", batch_size=10)
    on_two = "via bulk insert on 2 connections in " in out
    assert on_two == (connection.vendor == "postgresql")
    assert (
        json.loads(run_command("seed_users", 30, "--streams", "1", format="json")[0])["streams"]
        == 1
    )
    assert run_command("seed_users", 30, "--streams", "0")[2] == 2
