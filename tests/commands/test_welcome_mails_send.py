"""welcome_mails send and retry in-process (call_command): exit codes, the summary, JSON,
and no mail body, address or server reply in the output.

Real processes (cron's view: the lock, signals, kills, workers) are in
tests/system/test_welcome_delivery.py.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from profiles.models import WelcomeMail
from profiles.welcome.records import pending_values
from tests.helpers.commands import run_command
from tests.helpers.cron import held_elsewhere, metrics
from tests.helpers.smtp import refusing_settings, smtp_sink
from tests.helpers.users import bulk_users

pytestmark = pytest.mark.django_db

Status = WelcomeMail.Status


@pytest.fixture
def sink():
    with smtp_sink() as server, server.settings():
        yield server


def pending(count: int) -> list[Any]:
    made = bulk_users(count)
    WelcomeMail.objects.bulk_create([WelcomeMail(user_id=u.pk, **pending_values()) for u in made])
    return made


def assert_no_mail_in(text: str, made: list[Any]) -> None:
    for user in made:
        assert user.get_username() not in text
        assert getattr(user, user.get_email_field_name()) not in text
    assert "your account is ready" not in text
    assert "Welcome!" not in text


@pytest.mark.any_user_model
def test_send_says_how_many_it_sent_and_where(sink):
    made = pending(3)
    out, err, code = run_command("welcome_mails", "send", "--batch-size", "2")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"Sent 3 welcome mail(s) to SMTP 127.0.0.1:{sink.port} in 2 batch(es), "
    )
    assert sink.count() == 3
    assert_no_mail_in(out + err, made)


def test_send_with_nothing_due_exits_0(sink):
    out, err, code = run_command("welcome_mails", "send")
    assert (out, err, code) == ("Nothing to send: no welcome mail is due.\n", "", 0)


def test_send_at_verbosity_0_prints_nothing(sink):
    pending(2)
    assert run_command("welcome_mails", "send", "-v", "0") == ("", "", 0)
    assert sink.count() == 2


def test_send_json_has_the_figures_and_no_mail(sink):
    made = pending(3)
    sink.refuse_recipient(getattr(made[0], made[0].get_email_field_name()))
    sink.reply_after_data(getattr(made[1], made[1].get_email_field_name()), "451 4.3.0 busy")
    out, err, code = run_command("welcome_mails", "send", "--format", "json")
    assert (code, err) == (0, "")
    values = json.loads(out)
    assert {k: values[k] for k in ("sent", "failed", "deferred", "suppressed", "released")} == {
        "sent": 1,
        "failed": 1,
        "deferred": 1,
        "suppressed": 0,
        "released": 0,
    }
    assert values["destination"] == f"SMTP 127.0.0.1:{sink.port}"
    assert (values["stopped"], values["unreachable"], values["stop_signal"]) == (None, None, None)
    assert_no_mail_in(out, made)


def test_failed_and_deferred_records_are_reported_but_do_not_fail_the_run(sink):
    made = pending(2)
    sink.refuse_recipient(getattr(made[0], made[0].get_email_field_name()))
    out, err, code = run_command("welcome_mails", "send")
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == (
        "1 failed (see 'welcome_mails status'; 'retry' sends them again)."
    )
    assert "no such user" not in out  # a server's reply can quote the address


def test_an_unreachable_server_exits_75_with_one_line():
    made = pending(3)
    with refusing_settings():
        out, err, code = run_command("welcome_mails", "send", "--batch-size", "2")
    assert code == 75
    assert out == ""
    assert err.startswith("mail server unreachable (SMTP 127.0.0.1:")
    assert err.endswith("): 3 welcome mail(s) stay pending; the next run retries.")
    assert len(err.splitlines()) == 1
    assert WelcomeMail.objects.filter(status=Status.PENDING, attempts=0).count() == 3
    assert_no_mail_in(err, made)


def test_a_held_lock_exits_75_and_no_lock_runs_anyway(sink):
    pending(1)
    with held_elsewhere("welcome_mails_send"):
        out, err, code = run_command("welcome_mails", "send")
        assert code == 75, (out, err)
        assert "another 'welcome_mails send' run holds the lock" in err
        assert sink.count() == 0
        assert run_command("welcome_mails", "send", "--no-lock", "-v", "0")[2] == 0
    assert sink.count() == 1


def test_limit_and_max_seconds_say_the_run_stopped(sink):
    pending(3)
    out, _, code = run_command("welcome_mails", "send", "--limit", "1")
    assert code == 0
    assert out.splitlines()[-1] == "Stopped (--limit reached); run again to send the rest."
    assert sink.count() == 1


def test_a_signal_exits_128_plus_its_number(sink, monkeypatch):
    pending(2)
    from dbtools import stopping

    real = stopping.StopRequest

    class Signalled(real):  # a SIGTERM arrives before the first batch
        def __init__(self) -> None:
            super().__init__()
            self.request(signal.SIGTERM)

    monkeypatch.setattr(stopping, "StopRequest", Signalled)
    _out, err, code = run_command("welcome_mails", "send")
    assert code == 143
    assert err.startswith("interrupted after sending 0 welcome mail(s)")
    assert WelcomeMail.objects.filter(status=Status.PENDING).count() == 2


def test_retry_puts_failed_records_back(sink):
    made = pending(2)
    WelcomeMail.objects.filter(user_id=made[0].pk).update(status=Status.FAILED, attempts=5)
    out, err, code = run_command("welcome_mails", "retry")
    assert (code, err) == (0, "")
    assert out == (
        "Put 1 failed welcome mail(s) back to pending; 'welcome_mails send' (or a worker) "
        "sends them.\n"
    )
    assert run_command("welcome_mails", "retry", "--format", "json") == ('{"retried": 0}\n', "", 0)
    assert run_command("welcome_mails", "retry")[0] == (
        "Nothing to retry: no welcome mail has failed.\n"
    )


@pytest.mark.django_db(transaction=True)  # two senders on connections of their own
def test_jobs_runs_that_many_senders_but_one_on_sqlite(sink):
    pending(30)
    out, err, code = run_command("welcome_mails", "send", "--batch-size", "4", "--format", "json")
    assert (code, err) == (0, "")
    values = json.loads(out)
    default_jobs = 1 if connections["default"].vendor == "sqlite" else 2
    assert (values["sent"], values["jobs"]) == (30, default_jobs)
    assert sink.duplicates() == {}
    WelcomeMail.objects.update(status=Status.PENDING, due_at=timezone.now())
    out, _, code = run_command("welcome_mails", "send", "--jobs", "1", "--format", "json")
    assert (code, json.loads(out)["sent"], json.loads(out)["jobs"]) == (0, 30, 1)


def test_jobs_must_be_at_least_one(sink):
    _out, err, code = run_command("welcome_mails", "send", "--jobs", "0")
    assert code == 2
    assert "--jobs" in err


def test_a_refused_sender_address_exits_78_naming_the_setting(sink):
    made = pending(3)
    sink.refuse_sender("553 5.7.1 <webmaster@localhost> not allowed to send for this domain")
    out, err, code = run_command("welcome_mails", "send", "--batch-size", "2")
    assert code == 78
    assert out == ""
    assert err.startswith(
        f"mail settings refused: SMTP 127.0.0.1:{sink.port} refused the sender address (553): "
        "check DEFAULT_FROM_EMAIL ("
    )
    assert err.endswith("3 welcome mail(s) stay pending; fix the setting, then run again.")
    assert len(err.splitlines()) == 1
    assert "not allowed" not in err  # never the server's reply
    assert WelcomeMail.objects.filter(status=Status.PENDING, attempts=0).count() == 3
    assert_no_mail_in(out + err, made)
    values = json.loads(run_command("welcome_mails", "send", "--format", "json")[0])
    assert values["misconfigured"].startswith(f"SMTP 127.0.0.1:{sink.port} refused the sender")
    assert (values["sent"], values["failed"], values["pending"]) == (0, 0, 3)


def test_a_refused_login_exits_78_naming_the_settings():
    made = pending(2)
    with (
        smtp_sink(login=("welcome", "right")) as server,
        server.settings(username="welcome", password="wrong"),
    ):
        out, err, code = run_command("welcome_mails", "send")
    assert (code, out) == (78, "")
    assert "refused the login (535): check EMAIL_HOST_USER and EMAIL_HOST_PASSWORD" in err
    assert len(err.splitlines()) == 1
    assert WelcomeMail.objects.filter(status=Status.PENDING, attempts=0).count() == 2
    assert_no_mail_in(out + err, made)


def test_an_address_that_cannot_be_sent_fails_its_record_and_the_run_exits_0(sink):
    made = pending(2)
    bad = "x@example.com\nBcc: evil@example.com"
    type(made[0])._default_manager.filter(pk=made[0].pk).update(
        **{made[0].get_email_field_name(): bad}
    )
    out, err, code = run_command("welcome_mails", "send")
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == "1 failed (see 'welcome_mails status'; 'retry' sends them again)."
    assert "evil" not in out
    assert sink.count() == 1
    assert WelcomeMail.objects.get(user_id=made[0].pk).status == Status.FAILED


def test_if_locked_skip_exits_0_and_sends_nothing(sink, tmp_path):
    pending(2)
    path = tmp_path / "send.prom"
    with held_elsewhere("welcome_mails_send"):
        assert run_command(
            "welcome_mails", "send", "--if-locked", "skip", "-v", "0", "--metrics-file", str(path)
        ) == ("", "", 0)
        out, _, code = run_command("welcome_mails", "send", "--if-locked", "skip")
        assert (code, out.strip()) == (
            0,
            "skipped: another 'welcome_mails send' run holds the lock on database 'default'.",
        )
        _, err, code = run_command("welcome_mails", "send", "--wait", "0.2")
        assert code == 75 and "waited 0.2 s for it; try again later, or pass a longer" in err
    assert sink.count() == 0
    assert metrics(path)["last_run_skipped"] == 1
    assert run_command("welcome_mails", "send", "-v", "0", "--metrics-file", str(path))[2] == 0
    figures = metrics(path)
    assert (figures["last_run_rows"], figures["last_run_skipped"]) == (2, 0)


@pytest.mark.parametrize(
    "args", [["--no-lock", "--wait", "1"], ["--no-lock", "--if-locked", "skip"]]
)
def test_no_lock_with_a_lock_option_exits_2(sink, args):
    pending(1)
    out, err, code = run_command("welcome_mails", "send", *args)
    assert (code, out) == (2, "") and "cannot be used together" in err
    assert sink.count() == 0
