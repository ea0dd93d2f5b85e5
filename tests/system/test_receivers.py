"""manage.py receivers across real processes: a switch one process sets is obeyed by the
next and, within the refresh period, by one already running; and the command line's
one-line errors, exit codes and help."""

from __future__ import annotations

import time

import pytest

from tests.helpers.processes import spawned

PROFILE = "profiles.receivers.create_profile"
WELCOME = "profiles.receivers.send_welcome_email"

SEED_AND_COUNT = """
from django.contrib.auth import get_user_model
from django.core import mail
from profiles.models import Profile
User = get_user_model()
users = [User.objects.create_user(f"{tag}{i}", f"{tag}{i}@example.com") for i in range(3)]
print(Profile.objects.filter(user__in=users).count(), len(getattr(mail, "outbox", [])))
"""

LOCMEM = {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}


def seed_in_fresh_process(manage, tag: str) -> str:
    result = manage("shell", "--no-imports", "-c", SEED_AND_COUNT.replace("{tag}", tag), env=LOCMEM)
    assert result.returncode == 0, result.stderr
    return str(result.stdout).strip()


@pytest.mark.django_db(transaction=True)
def test_a_switch_set_by_one_process_is_obeyed_by_the_next(manage):
    assert seed_in_fresh_process(manage, "before") == "3 3"
    off = manage("receivers", "off", PROFILE, WELCOME, "--reason", "import", "--for", "1h")
    assert off.returncode == 0, off.stderr
    assert off.stdout.count("Switched off") == 2
    assert seed_in_fresh_process(manage, "during") == "0 0"
    on = manage("receivers", "on", "--all")
    assert on.returncode == 0, on.stderr
    assert seed_in_fresh_process(manage, "after") == "3 3"


@pytest.mark.django_db(transaction=True)
def test_one_switch_leaves_the_other_receiver_on_in_another_process(manage):
    assert manage("receivers", "off", WELCOME).returncode == 0
    assert seed_in_fresh_process(manage, "import") == "3 0"


# Creates a user at every poll, until one gets no profile (or a minute has passed).
LONG_RUNNING = """
import itertools
import time
from django.contrib.auth import get_user_model
from profiles.models import Profile
from tests.helpers.processes import wait_until
User = get_user_model()
serial = itertools.count(1)

def switched_off():
    user = User.objects.create_user(f"user{next(serial)}")
    has_profile = Profile.objects.filter(user=user).exists()
    print(time.time(), "on" if has_profile else "off", flush=True)
    return not has_profile

wait_until(switched_off, timeout=60)
"""


@pytest.mark.django_db(transaction=True)
def test_a_running_process_obeys_within_the_refresh_period(manage):
    refresh = 1.0
    env = {"RECEIVER_SWITCHES_REFRESH_SECONDS": str(int(refresh))}
    with spawned("shell", "--no-imports", "-c", LONG_RUNNING, env=env) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.split()[1:] == ["on"], first  # running, receiver on
        assert manage("receivers", "off", PROFILE).returncode == 0
        switched_at = time.time()  # the change is committed by now
        out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[-1][1] == "off", "the running process never obeyed the switch"
    # Every user created more than one refresh period after the switch had no profile.
    slack = 1.0  # one loop, one read, a slow machine
    late = [state for at, state in lines if float(at) > switched_at + refresh + slack]
    assert "on" not in late
    assert float(lines[-1][0]) - switched_at <= refresh + slack


def test_an_impossible_duration_through_manage_py_is_one_line_exit_2(manage):
    result = manage("receivers", "off", WELCOME, "--for", "9999999d")
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "'9999999d' is longer than the longest switch" in line


def test_unknown_name_through_manage_py_is_one_line_exit_2(manage):
    result = manage("receivers", "off", "profiles.receivers.send_welcome_mail")
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "closest: profiles.receivers.send_welcome_email" in line


def test_help_names_the_subcommands(manage):
    result = manage("receivers", "--help")
    assert result.returncode == 0
    for word in ("list", "off", "on", "Exit codes:"):
        assert word in result.stdout
    off_help = manage("receivers", "off", "--help").stdout
    for option in ("--reason", "--by", "--for", "--database"):
        assert option in off_help
