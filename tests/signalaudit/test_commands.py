"""command_audit: a management command run under the detector, its output and exit code kept."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management.base import CommandError
from django.core.management.commands import check

from commands import clickbridge
from commands.exitcodes import ExitCode
from dbtools.errors import UsageError
from signalaudit import AuditReport, detector, signal_skips_expected
from signalaudit.commands import CommandAudit, command_audit
from tests.helpers.audit import SKIPPED, bulk_insert_operation, bulk_insert_site
from tests.helpers.users import user_model, users


@pytest.fixture(autouse=True)
def debug_on(settings):
    settings.DEBUG = True  # seed_users refuses with DEBUG off; the test runner turns it off


def audited(command: str, *args: str) -> tuple[CommandAudit, str, str]:
    out, err = io.StringIO(), io.StringIO()
    audit = command_audit(command=command, args=args, stdout=out, stderr=err)
    return audit, out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_a_bulk_seed_is_one_site_at_the_insert_line_with_both_receivers():
    audit, out, err = audited("seed_users", "50", "--via", "bulk", "--seed", "1")
    assert (audit.returncode, audit.error, err) == (0, None, "")
    assert "Created 50 user(s) via bulk insert" in out  # the command printed as usual
    [site] = audit.report.sites()
    assert site.model == user_model()._meta.label
    assert site.operation == bulk_insert_operation()
    assert site.site == bulk_insert_site()
    assert (site.statements, site.rows, site.expected) == (1, 50, None)
    assert site.receiver_names == SKIPPED
    assert audit.command_line == "seed_users 50 --via bulk --seed 1"


@pytest.mark.django_db
def test_each_batch_is_a_statement_of_the_same_site():
    audit, _, _ = audited("seed_users", "250", "--batch-size", "100", "--seed", "1")
    assert [s.rows for s in audit.report.skips] == [100, 100, 50]
    [site] = audit.report.sites()
    assert (site.statements, site.rows, site.site) == (3, 250, bulk_insert_site())


@pytest.mark.django_db
def test_a_seed_through_save_skips_nothing():
    audit, out, _ = audited("seed_users", "30", "--via", "save", "--seed", "1")
    assert audit.returncode == 0
    assert "30 profile(s) created by receivers" in out
    assert audit.report.skips == []


@pytest.mark.django_db
def test_a_skip_inside_signal_skips_expected_is_expected_with_its_reason():
    with signal_skips_expected("seeding: profiles are backfilled"):
        audit, _, _ = audited("seed_users", "20", "--seed", "1")
    [site] = audit.report.sites()
    assert site.expected == "seeding: profiles are backfilled"
    assert (audit.report.unexpected, len(audit.report.expected)) == ([], 1)


@pytest.mark.django_db
def test_a_command_error_is_kept_with_its_code_not_raised(monkeypatch):
    def unreachable(*, using):
        raise CommandError("cannot connect to database 'default'", returncode=ExitCode.TEMPFAIL)

    monkeypatch.setattr(clickbridge, "database_ready", unreachable)
    audit, _, _ = audited("profiles_status")
    assert audit.returncode == ExitCode.TEMPFAIL
    assert isinstance(audit.error, CommandError) and "cannot connect" in str(audit.error)


@pytest.mark.django_db
def test_a_usage_error_of_the_command_keeps_exit_2_and_nothing_is_written():
    audit, _, _ = audited("seed_users", "10", "--via", "nope")
    assert audit.returncode == ExitCode.USAGE
    assert "Invalid value for '--via'" in str(audit.error)
    assert not users().exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [((), "No database fixture specified"), (("--bogus",), "unrecognized arguments: --bogus")],
)
def test_a_django_commands_bad_usage_is_refused_as_its_command_line_would_before_it_runs(
    args, message, monkeypatch
):
    from django.core.management.commands import loaddata

    ran = []
    monkeypatch.setattr(loaddata.Command, "handle", lambda self, *a, **o: ran.append(a))
    with pytest.raises(UsageError, match=message):
        audited("loaddata", *(("fixture.json", *args) if args else args))
    assert ran == [] and not detector.active()


def test_a_command_that_calls_sys_exit_keeps_its_code(monkeypatch):
    monkeypatch.setattr(check.Command, "handle", lambda self, *args, **options: sys.exit(3))
    audit, _, _ = audited("check")
    assert isinstance(audit.error, SystemExit) and audit.returncode == 3


@pytest.mark.parametrize(("code", "returncode"), [(None, 0), (0, 0), (4, 4), ("a message", 1)])
def test_the_exit_code_of_sys_exit_is_the_interpreters(code, returncode):
    audit = CommandAudit(command="x", args=(), report=AuditReport(), error=SystemExit(code))
    assert audit.returncode == returncode


def test_an_unknown_command_is_refused_naming_the_closest_before_anything_runs():
    with pytest.raises(UsageError, match=r"unknown command 'seed_user'; did you mean 'seed_users'"):
        audited("seed_user", "10")
    with pytest.raises(UsageError, match=r"'manage\.py help' lists the commands"):
        audited("zzzzzz")
    assert not detector.active()


@pytest.mark.django_db
def test_the_audit_ends_with_the_command_even_when_it_fails():
    assert not detector.active()
    audited("seed_users", "0")
    assert not detector.active()
