"""The harness pieces the welcome-mail cases need: counters, environments, the sink."""

from __future__ import annotations

import contextlib
import smtplib

import pytest
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.test.utils import override_settings

from bench import registry, runner
from bench.cases import welcome
from bench.smtp_sink import smtp_mail_settings, smtp_sink
from profiles.models import WelcomeMail
from profiles.welcome.message import mail_connection
from profiles.welcome.records import pending_values

User = get_user_model()

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_counter_checks_what_the_body_claims():
    done = []

    def sent_so_far(using):
        """mails sent."""
        return len(done)

    def body(size, using):
        done.append(1)  # one, whatever it says
        return size

    liar = registry.Case(name="liar", group="g", body=body, reference=True, counts=sent_so_far)

    with pytest.raises(
        runner.BenchError, match=r"reported 3 row\(s\) created, but 1 \(mails sent\)"
    ):
        runner.run_cases([liar], size=3, repeat=1, using="default")


def test_cases_sharing_an_environment_enter_it_once():
    entered = []

    @contextlib.contextmanager
    def environment(using):
        entered.append(using)
        yield

    def body(size, using):
        User.objects.create(username=f"u{len(User.objects.all())}")
        return 1

    cases = [
        registry.Case(name="a", group="g", body=body, reference=True, environment=environment),
        registry.Case(name="b", group="g", body=body, environment=environment),
        registry.Case(name="c", group="g", body=body),
    ]
    runner.run_cases(cases, size=1, repeat=2, using="default")

    assert entered == ["default"]


def test_a_case_missing_its_apps_fails_before_anything_runs():
    ran = []
    needy = registry.Case(
        name="needy",
        group="g",
        body=lambda size, using: ran.append(1) or size,
        reference=True,
        requires_apps=("no_such_app",),
    )

    with pytest.raises(runner.BenchError, match="needs no_such_app in INSTALLED_APPS"):
        runner.run_cases([needy], size=1, repeat=1, using="default")
    assert ran == []


def test_tables_clear_empties_the_welcome_records():
    user = User.objects.create(username="u")
    WelcomeMail.objects.filter(user=user).delete()  # whatever the receiver wrote
    WelcomeMail.objects.create(user=user, **pending_values())

    runner.tables_clear(using="default")

    assert (User.objects.count(), WelcomeMail.objects.count()) == (0, 0)


def test_the_reference_statement_writes_one_pending_record_per_user():
    welcome.users_without_records(5, "default")

    assert welcome.records_insert_select("default") == 5
    assert list(WelcomeMail.objects.values_list("status", flat=True)) == ["pending"] * 5
    assert set(WelcomeMail.objects.values_list("user_id", flat=True)) == set(
        User.objects.values_list("pk", flat=True)
    )


@pytest.mark.processes
def test_the_sink_counts_messages_and_distinct_message_ids_and_resets():
    with smtp_sink() as sink, override_settings(**smtp_mail_settings(sink.host, sink.port)):
        messages = [
            EmailMessage("s", "b", to=["a@example.com"], headers={"Message-ID": f"<m{i % 2}@x>"})
            for i in range(3)
        ]
        with mail_connection() as connection:  # get_connection() is deprecated on 6.1
            assert connection.send_messages(messages) == 3
        assert (sink.counts().messages, sink.counts().distinct) == (3, 2)
        sink.reset()
        assert (sink.counts().messages, sink.counts().distinct) == (0, 0)
    with pytest.raises(OSError):  # stopped with the block
        smtplib.SMTP(sink.host, sink.port, timeout=2)


@pytest.mark.processes
def test_records_marked_sent_without_a_mail_fail_the_run():
    def body(size, using):
        WelcomeMail.objects.update(status=WelcomeMail.Status.SENT)
        return size

    liar = registry.Case(
        name="liar",
        group="g",
        body=body,
        reference=True,
        setup=welcome.pending_records,
        counts=welcome.mails_sent,
        environment=welcome.mail_to_sink,
    )

    with pytest.raises(runner.BenchError, match="the SMTP sink received 0 message"):
        runner.run_cases([liar], size=2, repeat=1, using="default")
