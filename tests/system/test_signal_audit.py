"""manage.py signal_audit in real processes: the exit codes and stdout CI sees."""

from __future__ import annotations

import json

import pytest

from tests.helpers.audit import SKIPPED, bulk_insert_operation, bulk_insert_site
from tests.helpers.users import user_model, users


@pytest.mark.django_db(transaction=True)
def test_a_bulk_seed_under_fail_on_skip_names_the_line_and_exits_1(manage):
    result = manage("signal_audit", "--fail-on-skip", "--", "seed_users", "60", "--via", "bulk")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Created 60 user(s) via bulk insert")
    label = user_model()._meta.label
    [site] = [line for line in lines if line.startswith(label)]
    assert site.split("  ") == [
        label,
        bulk_insert_operation(),
        "60 row(s)",
        ", ".join(SKIPPED),
        f"seeding/inserts.py:{bulk_insert_site().lineno} (bulk_insert_batch)",  # its cwd's path
    ]
    assert lines[-1] == "signal_audit: 1 write(s) at 1 call site(s) skipped receivers; 0 expected."
    assert result.stderr.startswith(
        "CommandError: 1 write(s) at 1 call site(s) skipped receivers; "
    )
    assert users().count() == 60  # the command's work is committed: the audit only reports


@pytest.mark.django_db(transaction=True)
def test_a_seed_through_save_exits_0_and_json_stays_parseable_in_a_file(manage, tmp_path):
    report = tmp_path / "audit.json"
    result = manage(
        "signal_audit",
        "--fail-on-skip",
        "--format",
        "json",
        "--output",
        str(report),
        "seed_users",
        "20",
        "--via",
        "save",
    )
    assert result.returncode == 0, result.stderr
    assert "20 profile(s) created by receivers" in result.stdout
    audit = json.loads(report.read_text())
    assert (audit["exit_code"], audit["unexpected"], audit["sites"]) == (0, 0, [])


@pytest.mark.django_db(transaction=True)
def test_the_commands_own_exit_code_and_one_line_come_through(manage):
    result = manage("signal_audit", "seed_users", "0")
    assert result.returncode == 2
    assert result.stdout.startswith("signal_audit: no write the detector saw skipped receivers")
    assert result.stderr.strip().splitlines() == [
        "CommandError: Invalid value for 'COUNT': 0 is not in the range x>=1."
    ]
    unknown = manage("signal_audit", "--", "seed_user")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr.strip() == (
        "CommandError: unknown command 'seed_user'; did you mean 'seed_users'?"
    )
