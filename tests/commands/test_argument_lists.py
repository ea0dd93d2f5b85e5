"""Any argument list, random or not, exits with a documented code and no traceback, and
one that is refused as bad usage (exit 2) writes nothing: a property-based test of every
command, in-process through run_from_argv as manage.py calls it.

docs/operations.md's other promises, in real processes:
tests/system/test_operations_contract.py.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
from django.contrib.auth import get_user_model
from django.core.management import load_command_class
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.exitcodes import ExitCode
from profiles.models import Profile, WelcomeMail
from seeding.models import SeedRun
from switches.models import ReceiverSwitch

User = get_user_model()

EXIT_CODES = {int(code) for code in ExitCode}
COMMANDS = [
    "profiles_status",
    "seed_users",
    "backfill_profiles",
    "purge_seeded",
    "receivers",
    "signal_matrix",
    "signal_audit",
    "welcome_mails",
]

TOKENS = [
    "--format",
    "json",
    "text",
    "markdown",
    "xml",
    "--database",
    "default",
    "nope",
    "--batch-size",
    "0",
    "1",
    "-1",
    "7",
    "--limit",
    "--dry-run",
    "--check",
    "--shard",
    "1/2",
    "3/2",
    "x/y",
    "--max-seconds",
    "0.01",
    "--wait",
    "0",
    "--no-lock",
    "-v",
    "2",
    "3",
    "--verbosity",
    "--via",
    "save",
    "bulk",
    "--seed",
    "--locale",
    "xx_XX",
    "de_DE",
    "--mute",
    "profiles.receivers.create_profile",
    "profiles.receivers.nope",
    "--password-file",
    "/nonexistent",
    "--password",
    "--force",
    "--no-input",
    "list",
    "off",
    "on",
    "--all",
    "--for",
    "2h",
    "0s",
    "--reason",
    "--by",
    "status",
    "sync",
    "send",
    "suppress",
    "retry",
    "--joined-since",
    "--joined-between",
    "2026-01-01",
    "--max-age",
    "--no-color",
    "--help",
    "--",
    "=",
]
ARGUMENTS = st.lists(
    st.one_of(st.sampled_from(TOKENS), st.text(alphabet="abcxyz-_=./ ", max_size=6)),
    max_size=7,
)


def row_counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (User, Profile, WelcomeMail, SeedRun, ReceiverSwitch))


@pytest.mark.django_db
@pytest.mark.parametrize("name", COMMANDS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(arguments=ARGUMENTS)
def test_any_argument_list_exits_cleanly_and_a_bad_one_writes_nothing(
    name, arguments, capsys, monkeypatch
):
    # run_from_argv closes every connection at the end, as a process exit would;
    # here that would close the test's own transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    before = row_counts()
    command = load_command_class("commands", name)
    with redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exit_info:
        command.run_from_argv(["manage.py", name, *arguments])
    code = exit_info.value.code
    err = capsys.readouterr().err
    assert code in EXIT_CODES, (arguments, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert row_counts() == before, arguments
