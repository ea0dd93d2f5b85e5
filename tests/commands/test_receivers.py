"""manage.py receivers: list, off and on, in-process and across real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from switches import state
from switches.models import ReceiverSwitch
from switches.muting import muted
from switches.registry import connected_receivers
from tests.conftest import PROJECT_DIR, database_url, run_command

User = get_user_model()

PROFILE = "profiles.receivers.create_profile"
WELCOME = "profiles.receivers.send_welcome_email"


@pytest.fixture(autouse=True)
def fresh_switch_state():
    # This process's snapshot must not outlive a test's rolled-back or flushed rows.
    state.forget()
    yield
    state.forget()


def listed(**options) -> dict[tuple[str, str], dict[str, Any]]:
    out, err, code = run_command("receivers", "list", "--format", "json", **options)
    assert (err, code) == ("", 0)
    return {(r["name"], r["signal"]): r for r in json.loads(out)["receivers"]}


@pytest.mark.django_db
def test_list_shows_the_profile_and_welcome_mail_receivers():
    out, err, code = run_command("receivers", "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["RECEIVER", "SIGNAL", "SENDER", "SWITCHABLE", "STATE"]
    assert lines[1].split() == [PROFILE, "post_save", "auth.User", "yes", "on"]
    assert lines[2].split() == [WELCOME, "post_save", "auth.User", "yes", "on"]
    assert any(
        line.split()[:4]
        == ["django.contrib.auth.models.update_last_login", "user_logged_in", "(any)", "no"]
        for line in lines
    )
    assert lines[-1].endswith("2 switchable, 0 off (database 'default').")


@pytest.mark.django_db
def test_list_json_parses_and_lists_every_receiver():
    receivers = listed()
    assert set(receivers) == {(c.name, c.signal) for c in connected_receivers()}
    welcome = receivers[(WELCOME, "post_save")]
    assert welcome == {
        "name": WELCOME,
        "signal": "post_save",
        "sender": "auth.User",
        "dispatch_uid": WELCOME,
        "async": False,
        "switchable": True,
        "state": "on",
        "switched_off_at": None,
        "switched_off_by": None,
        "reason": None,
        "expires_at": None,
        "seconds_left": None,
    }
    assert not receivers[("django.contrib.auth.models.update_last_login", "user_logged_in")][
        "switchable"
    ]


@pytest.mark.django_db
def test_off_for_a_while_then_list_shows_when_who_why_and_time_left():
    out, err, code = run_command(
        "receivers", "off", WELCOME, "--for", "2h", "--reason", "bulk import", "--by", "ann"
    )
    assert (err, code) == ("", 0)
    assert out.startswith(f"Switched off {WELCOME} until ")
    assert out.rstrip().endswith("(in 2h).")
    welcome = listed()[(WELCOME, "post_save")]
    assert welcome["state"] == "off"
    assert (welcome["switched_off_by"], welcome["reason"]) == ("ann", "bulk import")
    assert 7190 < welcome["seconds_left"] <= 7200
    assert listed()[(PROFILE, "post_save")]["state"] == "on"  # one receiver, not the signal
    text, _, _ = run_command("receivers", "list")
    [line] = [line for line in text.splitlines() if line.startswith(WELCOME)]
    assert " off since " in line and " by ann, 2h left: bulk import" in line


@pytest.mark.django_db
def test_off_and_on_are_idempotent():
    assert run_command("receivers", "off", WELCOME, "--by", "ann")[2] == 0
    out, err, code = run_command("receivers", "off", WELCOME, "--reason", "again")
    assert (err, code) == ("", 0)
    assert out.startswith(f"{WELCOME} is already off (since ")
    assert ReceiverSwitch.objects.get().reason == "again"
    assert run_command("receivers", "on", WELCOME) == (f"Switched on {WELCOME}.\n", "", 0)
    assert run_command("receivers", "on", WELCOME) == (f"{WELCOME} is already on.\n", "", 0)


@pytest.mark.django_db
def test_on_all_switches_every_receiver_back_on():
    run_command("receivers", "off", WELCOME, PROFILE)
    out, _, code = run_command("receivers", "on", "--all")
    assert code == 0
    assert out.splitlines() == [f"Switched on {PROFILE}.", f"Switched on {WELCOME}."]
    assert not ReceiverSwitch.objects.exists()
    assert run_command("receivers", "on", "--all") == ("No receiver was switched off.\n", "", 0)


@pytest.mark.django_db
def test_an_unknown_name_exits_2_changes_nothing_and_suggests():
    out, err, code = run_command("receivers", "off", WELCOME, "profiles.receivers.send_welcome")
    assert code == 2 and out == ""
    assert "unknown receiver 'profiles.receivers.send_welcome' (closest: " in err
    assert WELCOME in err
    assert not ReceiverSwitch.objects.exists()
    _, err, code = run_command("receivers", "on", "create_profile")
    assert code == 2 and f"(closest: {PROFILE})" in err


@pytest.mark.django_db
def test_a_receiver_that_is_not_switchable_exits_2():
    _, err, code = run_command("receivers", "off", "django.contrib.auth.models.update_last_login")
    assert code == 2 and "not switchable" in err and "RECEIVER_SWITCHES_EXTRA" in err


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["on"], "give receiver names or --all"),
        (["on", WELCOME, "--all"], "give receiver names or --all"),
        (["off"], "Missing argument"),
        (["off", WELCOME, "--for", "2 hours"], "is not a duration"),
        (["off", WELCOME, "--for", "0m"], "longer than 0s"),
        (["off", WELCOME, "--by", "x" * 151], "longer than 150"),
        (["list", "--database", "nope"], "unknown database alias"),
    ],
)
def test_bad_usage_exits_2(args, message):
    _, err, code = run_command("receivers", *args)
    assert code == 2 and message in err
    assert not ReceiverSwitch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("duration", ["9999999d", "36501d", "36500d1s", "9" * 5000 + "s"])
def test_a_duration_whose_expiry_no_database_can_hold_exits_2_and_writes_nothing(duration):
    out, err, code = run_command("receivers", "off", WELCOME, "--for", duration)
    assert (out, code) == ("", 2)
    assert "is longer than the longest switch, 36500d (100 years" in err
    assert len(err) < 300  # a 5000-digit value is not echoed back whole
    assert not ReceiverSwitch.objects.exists()


@pytest.mark.django_db
def test_the_longest_duration_is_stored_and_read_back_on_this_backend():
    out, err, code = run_command("receivers", "off", WELCOME, "--for", "36500d")
    assert (err, code) == ("", 0) and "(in 36500d)" in out
    switch = ReceiverSwitch.objects.get()
    assert switch.expires_at is not None and switch.expires_at.year >= 2126
    assert listed()[(WELCOME, "post_save")]["seconds_left"] > 36499 * 86400


@pytest.mark.django_db
def test_the_service_refuses_an_expiry_beyond_the_longest_duration():
    from switches.services import MAX_DURATION, receiver_switches_off

    until = timezone.now() + MAX_DURATION + timedelta(minutes=1)
    with pytest.raises(ValueError, match="more than 36500 days away"):
        receiver_switches_off(names=[WELCOME], reason="", by="", until=until, using="default")
    assert not ReceiverSwitch.objects.exists()


def test_an_impossible_duration_through_manage_py_is_one_line_exit_2(manage):
    result = manage("receivers", "off", WELCOME, "--for", "9999999d")
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "'9999999d' is longer than the longest switch" in line


@pytest.mark.django_db
def test_verbosity_0_prints_nothing():
    assert run_command("receivers", "off", WELCOME, "-v", "0") == ("", "", 0)
    assert run_command("receivers", "list", "-v", "0") == ("", "", 0)
    assert run_command("receivers", "on", "--all", "-v", "0") == ("", "", 0)


@pytest.mark.django_db
def test_verbosity_2_says_when_running_processes_follow(settings):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 7
    out, _, _ = run_command("receivers", "off", WELCOME, "-v", "2")
    assert "running ones within 7s" in out


@pytest.mark.django_db
def test_list_shows_receivers_muted_in_this_process():
    with muted(WELCOME):
        assert listed()[(WELCOME, "post_save")]["state"] == "muted"
        text, _, _ = run_command("receivers", "list")
    assert "muted (in this process)" in text


@pytest.mark.django_db
def test_on_removes_the_switch_of_a_receiver_that_no_longer_exists():
    ReceiverSwitch.objects.create(name="gone.receivers.old", switched_off_at="2026-01-01T00:00Z")
    assert run_command("receivers", "on", "gone.receivers.old")[2] == 0
    assert not ReceiverSwitch.objects.exists()


# -- real processes against the test database --


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


LONG_RUNNING = """
import time
from django.contrib.auth import get_user_model
from profiles.models import Profile
User = get_user_model()
deadline = time.time() + 60
i = 0
while time.time() < deadline:
    i += 1
    user = User.objects.create_user(f"user{i}")
    has_profile = Profile.objects.filter(user=user).exists()
    print(time.time(), "on" if has_profile else "off", flush=True)
    if not has_profile:
        break
    time.sleep(0.05)
"""


@pytest.mark.django_db(transaction=True)
def test_a_running_process_obeys_within_the_refresh_period(manage):
    refresh = 1.0
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        "RECEIVER_SWITCHES_REFRESH_SECONDS": str(int(refresh)),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_DIR / "manage.py"),
            "shell",
            "--no-imports",
            "-c",
            LONG_RUNNING,
        ],
        cwd=PROJECT_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().split()[1] == "on"  # running, receiver on
        assert manage("receivers", "off", PROFILE).returncode == 0
        switched_at = time.time()  # the change is committed by now
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[-1][1] == "off", "the running process never obeyed the switch"
    # Every user created more than one refresh period after the switch had no profile.
    slack = 1.0  # one loop, one read, a slow machine
    late = [state for at, state in lines if float(at) > switched_at + refresh + slack]
    assert "on" not in late
    assert float(lines[-1][0]) - switched_at <= refresh + slack


def test_unknown_name_through_manage_py_is_one_line_exit_2(manage):
    result = manage("receivers", "off", "profiles.receivers.send_welcome_mail")
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "closest: profiles.receivers.send_welcome_email" in line


def test_unreachable_database_exits_75(manage):
    result = manage("receivers", "list", env={"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"})
    assert result.returncode == 75, result.stderr
    assert "cannot connect to database 'default'" in result.stderr


def test_help_names_the_subcommands(manage):
    result = manage("receivers", "--help")
    assert result.returncode == 0
    for word in ("list", "off", "on", "Exit codes:"):
        assert word in result.stdout
    off_help = manage("receivers", "off", "--help").stdout
    for option in ("--reason", "--by", "--for", "--database"):
        assert option in off_help
