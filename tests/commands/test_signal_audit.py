"""manage.py signal_audit in-process: the report in each format, verbosity, --output, exit
codes (a real manage.py process: tests/system/test_signal_audit.py)."""

from __future__ import annotations

import io
import json
import sys

import click
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.commands import check

from commands import clickbridge
from commands.exitcodes import ExitCode, exit_codes_help
from commands.management.commands import signal_audit
from signalaudit import signal_skips_expected
from tests.helpers.audit import (
    SKIPPED,
    bulk_insert_operation,
    bulk_insert_site,
    bulk_insert_statement,
)
from tests.helpers.commands import run_command
from tests.helpers.users import user_model, users

BULK = ("seed_users", "50", "--via", "bulk", "--seed", "1")
SAVE = ("seed_users", "20", "--via", "save", "--seed", "1")
FOUND = "signal_audit: 1 write(s) at 1 call site(s) skipped receivers; 0 expected."
NOTHING = (
    "signal_audit: no write the detector saw skipped receivers; "
    "docs/audit.md lists what the detector cannot see."
)


@pytest.fixture(autouse=True)
def debug_on(settings):
    settings.DEBUG = True  # seed_users refuses with DEBUG off; the test runner turns it off


def site_line(out: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith(user_model()._meta.label)]
    return line


@pytest.mark.django_db
@pytest.mark.parametrize("separator", [(), ("--",)], ids=["without --", "with --"])
def test_a_bulk_seed_prints_as_usual_then_the_line_and_the_receivers_it_skipped(separator):
    out, err, code = run_command("signal_audit", *separator, *BULK)
    assert (err, code) == ("", 0)
    lines = out.splitlines()
    assert lines[0].startswith("Created 50 user(s) via bulk insert")  # the command's own
    site = bulk_insert_site()
    assert site_line(out).split("  ") == [
        user_model()._meta.label,
        bulk_insert_operation(),
        "50 row(s)",
        ", ".join(SKIPPED),
        f"{site} (bulk_insert_batch)",
    ]
    assert str(site).startswith("seeding/inserts.py:")
    assert lines[-1] == FOUND


@pytest.mark.django_db
def test_the_commands_own_options_after_its_name_are_its_own():
    # --format is signal_audit's before the name, seed_users' after it.
    out, _, code = run_command("signal_audit", "--format", "text", *BULK, "--format", "json")
    assert code == 0
    assert json.loads(out.splitlines()[0])["created"] == 50
    assert out.splitlines()[-1] == FOUND


@pytest.mark.django_db
def test_a_seed_through_save_finds_nothing_and_says_what_cannot_be_seen():
    out, err, code = run_command("signal_audit", "--fail-on-skip", "--", *SAVE)
    assert (err, code) == ("", 0)
    assert "20 profile(s) created by receivers" in out
    assert out.splitlines()[-1] == NOTHING


@pytest.mark.django_db
def test_fail_on_skip_exits_1_after_the_report():
    out, err, code = run_command("signal_audit", "--fail-on-skip", "--", *BULK)
    assert code == ExitCode.FAILED
    assert out.splitlines()[-1] == FOUND
    assert err.startswith("1 write(s) at 1 call site(s) skipped receivers; ")
    assert "signal_skips_expected()" in err and "\n" not in err.strip()


@pytest.mark.django_db
def test_an_expected_skip_is_marked_with_its_reason_and_never_fails():
    with signal_skips_expected("seeding: backfilled afterwards"):
        out, err, code = run_command("signal_audit", "--fail-on-skip", "--", *BULK)
    assert (err, code) == ("", 0)
    assert site_line(out).endswith(" (bulk_insert_batch)  expected: seeding: backfilled afterwards")
    assert out.splitlines()[-1] == (
        "signal_audit: 0 write(s) at 0 call site(s) skipped receivers; 1 expected; "
        "docs/audit.md lists what the detector cannot see."
    )


@pytest.mark.django_db
def test_the_commands_usage_error_keeps_its_exit_2_after_the_report():
    out, err, code = run_command("signal_audit", "--fail-on-skip", "--", "seed_users", "--via", "x")
    assert code == ExitCode.USAGE
    assert "Invalid value for '--via'" in err
    assert out.splitlines() == [
        "signal_audit: no write the detector saw skipped receivers (seed_users exited 2); "
        "docs/audit.md lists what the detector cannot see."
    ]
    assert not users().exists()


@pytest.mark.django_db
def test_the_commands_failure_code_wins_over_fail_on_skip(monkeypatch):
    def unreachable(*, using):
        raise CommandError("cannot connect to database 'default'", returncode=ExitCode.TEMPFAIL)

    monkeypatch.setattr(clickbridge, "database_ready", unreachable)
    out, err, code = run_command("signal_audit", "--fail-on-skip", "profiles_status")
    assert code == ExitCode.TEMPFAIL
    assert err == "cannot connect to database 'default'"
    assert "(profiles_status exited 75)" in out


def test_a_command_that_calls_sys_exit_exits_so_after_the_report(monkeypatch):
    monkeypatch.setattr(check.Command, "handle", lambda self, *args, **options: sys.exit(3))
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("signal_audit", "check", stdout=out, stderr=io.StringIO())
    assert exit_info.value.code == 3
    assert out.getvalue().startswith("signal_audit: no write the detector saw skipped receivers")
    assert "(check exited 3)" in out.getvalue()


@pytest.mark.django_db
def test_json_is_one_object_after_the_commands_output():
    out, _, code = run_command("signal_audit", "--format", "json", "--", *BULK)
    assert code == 0
    *printed, last = out.splitlines()
    assert printed[0].startswith("Created 50 user(s)")
    report = json.loads(last)
    site = bulk_insert_site()
    assert report == {
        "command": "seed_users",
        "args": list(BULK[1:]),
        "exit_code": 0,
        "unexpected": 1,
        "unexpected_sites": 1,
        "expected": 0,
        "expected_sites": 0,
        "sites": [
            {
                "file": site.path,
                "line": site.lineno,
                "function": "bulk_insert_batch",
                "model": user_model()._meta.label,
                "operation": bulk_insert_operation(),
                "statements": 1,
                "rows": 50,
                "receivers": [{"name": name, "signal": "post_save"} for name in SKIPPED],
                "expected": None,
            }
        ],
    }


@pytest.mark.django_db
def test_json_at_verbosity_2_has_each_statement_and_at_0_is_still_printed():
    out, _, _ = run_command("signal_audit", "--format", "json", "-v", "2", "--", *BULK, "-v", "0")
    [skip] = json.loads(out)["sites"][0]["skips"]
    assert (skip["database"], skip["write"], skip["rows"]) == ("default", "insert", 50)
    assert skip["statement"].startswith(bulk_insert_statement())
    out, _, _ = run_command("signal_audit", "--format", "json", "-v", "0", "--", *SAVE, "-v", "0")
    assert json.loads(out)["sites"] == []


@pytest.mark.django_db
def test_markdown_is_a_table_then_the_summary():
    out, _, code = run_command("signal_audit", "--format", "markdown", "--", *BULK, "-v", "0")
    assert code == 0
    header, rule, row, blank, last = out.splitlines()
    assert header == (
        "| call site | model | operation | statements | rows | receivers skipped | expected |"
    )
    assert rule == "| --- | --- | --- | --- | --- | --- | --- |"
    receivers = ", ".join(f"`{name}`" for name in SKIPPED)
    assert row == (
        f"| `{bulk_insert_site()} (bulk_insert_batch)` | `{user_model()._meta.label}` | "
        f"{bulk_insert_operation()} | 1 | 50 | {receivers} |  |"
    )
    assert (blank, last) == ("", FOUND)


@pytest.mark.django_db
def test_markdown_at_verbosity_2_adds_the_sql_and_escapes_a_pipe():
    with signal_skips_expected("import | backfill"):
        out, _, _ = run_command(
            "signal_audit", "-v", "2", "--format", "markdown", "--", *BULK, "-v0"
        )
    header, _, row, *_ = out.splitlines()
    assert header.endswith(" | expected | SQL |")
    assert " | import \\| backfill | default: `" in row
    assert row.count(" | ") == 7  # eight cells: the pipe in the reason is escaped


@pytest.mark.django_db
def test_verbosity_0_prints_no_report_and_2_each_statement():
    out, _, code = run_command("signal_audit", "-v", "0", "--", *BULK)
    assert code == 0
    assert "Created 50 user(s)" in out and "signal_audit" not in out
    assert user_model()._meta.label not in out
    out, _, _ = run_command("signal_audit", "-v", "2", "--", "seed_users", "10", "-v", "0")
    site, statement, last = out.splitlines()
    assert site.startswith(user_model()._meta.label)
    assert statement.startswith(f"    default: {bulk_insert_statement()}") and statement.endswith(
        " (10 row(s))"
    )
    assert last.startswith("signal_audit: 1 write(s)")


@pytest.mark.django_db
def test_output_writes_the_report_to_the_file_and_only_the_commands_output_to_stdout(tmp_path):
    report = tmp_path / "report.json"
    out, _, code = run_command("signal_audit", "--format", "json", "--output", report, *BULK)
    assert code == 0
    assert out.startswith("Created 50 user(s)") and "{" not in out
    assert json.loads(report.read_text())["unexpected"] == 1
    text = tmp_path / "report.txt"
    out, _, code = run_command("signal_audit", "-v", "0", "--output", text, "--", *SAVE, "-v", "0")
    assert (out, code) == ("", 0)
    assert text.read_text() == NOTHING + "\n"  # a file asked for gets the report at -v 0


def test_an_unknown_command_is_bad_usage_naming_the_closest():
    out, err, code = run_command("signal_audit", "--", "seed_user", "10")
    assert (out, code) == ("", ExitCode.USAGE)
    assert err == "unknown command 'seed_user'; did you mean 'seed_users'?"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments",
    [(), ("--format", "yaml", *BULK), ("--bogus", *BULK), ("--output", "/nonexistent/x", *BULK)],
    ids=["no command", "bad format", "unknown option", "unwritable output"],
)
def test_bad_usage_of_signal_audit_itself_exits_2_and_runs_nothing(arguments):
    out, err, code = run_command("signal_audit", *arguments)
    assert (out, code) == ("", ExitCode.USAGE), err
    assert not users().exists()


def test_help_shows_where_the_command_goes_what_it_cannot_see_and_the_exit_codes():
    command = signal_audit.command
    text = command.get_help(click.Context(command, info_name="manage.py signal_audit"))
    assert "Usage: manage.py signal_audit [OPTIONS] [--] COMMAND [ARGS]..." in text
    flat = " ".join(text.split())
    assert "It cannot see writes that bypass Django's cursors" in flat
    assert "The exit code is COMMAND's own" in flat
    table = exit_codes_help(
        ExitCode,
        failed="COMMAND's own; with --fail-on-skip: a write skipped receivers",
        tempfail="COMMAND's own",
    )
    assert flat.endswith(" ".join(table.replace("\b", "").split()))
