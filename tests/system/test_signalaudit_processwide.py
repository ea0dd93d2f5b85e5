"""SIGNAL_AUDIT=warn|error through manage.py in real processes, on the run's backend.

``seed_users --via bulk`` writes users without save(): under ``warn`` the process says
so at the line of the insert (seeding/inserts.py) and exits 0; under ``error`` (or
``warn`` with a warnings filter that makes the warning an error) the batch rolls back
and the command exits 1 with one line. Off, nothing is installed at all.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from commands.exitcodes import ExitCode
from seeding.models import SeededUser
from tests.helpers.audit import bulk_insert_operation

User = get_user_model()

RECEIVERS = "profiles.receivers.create_profile, profiles.receivers.send_welcome_email"
# What an execute wrapper sees of seed_users' bulk insert: PostgreSQL's COPY reports itself.
BULK_OPERATION = bulk_insert_operation()
WARNING = re.compile(
    r"^\S*seeding/inserts\.py:(?P<line>\d+): SignalSkipWarning: "
    rf"auth\.User {re.escape(BULK_OPERATION)} \((?P<rows>\d+ row\(s\)|\? row\(s\))\) "
    rf"at seeding/inserts\.py:(?P=line) skipped {re.escape(RECEIVERS)}$",
    re.M,
)

INSTALLED = """
from django.db import connection
from django.db.backends.signals import connection_created
from signalaudit import detector
connection.ensure_connection()
uids = [entry[0][0] for entry in connection_created.receivers]
print(detector.active(), len(connection.execute_wrappers), detector._UID in uids)
"""


def seed(manage, mode: str | None, *args: str, **env: str | None):
    return manage(
        "seed_users", "20", "--seed", "1", "--batch-size", "10", *args,
        env={"SIGNAL_AUDIT": mode, **env},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "installed"),
    [
        (None, "False 0 False"),
        ("off", "False 0 False"),
        ("warn", "True 1 True"),
        ("error", "True 1 True"),
    ],
)
def test_only_warn_and_error_install_the_detector(manage, mode, installed):
    result = manage("shell", "--no-imports", "-c", INSTALLED, env={"SIGNAL_AUDIT": mode})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == installed


def test_an_invalid_mode_is_one_line_exit_78(manage):
    result = manage("profiles_status", env={"SIGNAL_AUDIT": "loud"})
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr == (
        "Error: improperly configured: SIGNAL_AUDIT must be off, warn or error (or unset).\n"
    )


@pytest.mark.django_db(transaction=True)
def test_warn_names_the_line_of_the_bulk_insert_and_exits_0(manage):
    result = seed(manage, "warn", "--via", "bulk")

    assert result.returncode == 0, result.stderr
    warnings = list(WARNING.finditer(result.stderr))
    # Two batches of 10, the same line and message: Python shows it once.
    assert len(warnings) == 1, result.stderr
    assert User.objects.count() == 20


@pytest.mark.django_db(transaction=True)
def test_warn_is_silent_for_save(manage):
    result = seed(manage, "warn", "--via", "save")

    assert result.returncode == 0, result.stderr
    assert "SignalSkipWarning" not in result.stderr
    assert User.objects.count() == 20


@pytest.mark.parametrize(
    ("mode", "python_warnings"),
    [
        pytest.param("error", None, id="error"),
        # Python reads -W and PYTHONWARNINGS before site-packages can be imported, so a
        # filter on signalaudit.SignalSkipWarning itself is ignored there: RuntimeWarning
        # (its base class), narrowed to the model by the message's start.
        pytest.param("warn", "error:auth.User:RuntimeWarning", id="warn+PYTHONWARNINGS"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_error_rolls_the_batch_back_and_exits_1_with_one_line(manage, mode, python_warnings):
    result = seed(manage, mode, "--via", "bulk", PYTHONWARNINGS=python_warnings)

    assert result.returncode == ExitCode.FAILED
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: unexpected SignalSkipWarning: auth.User {BULK_OPERATION} (")
    assert re.search(rf"at seeding/inserts\.py:\d+ skipped {re.escape(RECEIVERS)} ", line), line
    # The first batch raised inside its transaction: none of its rows, nor any later one.
    assert User.objects.count() == 0
    assert SeededUser.objects.count() == 0
