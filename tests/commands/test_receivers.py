"""manage.py receivers: list, off and on, in-process (real processes: tests/system).

The --for durations: tests/commands/test_durations.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management.base import CommandError
from django.db.models.signals import pre_save

from commands import clickbridge
from commands.exitcodes import ExitCode
from switches.introspection import connected_receivers
from switches.models import ReceiverSwitch
from switches.muting import muted
from tests.helpers.commands import run_command
from tests.helpers.processes import PROJECT_DIR

PROFILE = "profiles.receivers.create_profile"
WELCOME = "profiles.receivers.send_welcome_email"


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
        (["off", WELCOME, "--by", "x" * 151], "longer than 150"),
        (["list", "--database", "nope"], "unknown database alias"),
    ],
)
def test_bad_usage_exits_2(args, message):
    _, err, code = run_command("receivers", *args)
    assert code == 2 and message in err
    assert not ReceiverSwitch.objects.exists()


@pytest.mark.parametrize("args", [["on"], ["on", WELCOME, "--all"], ["on", "--all", WELCOME]])
def test_on_without_names_or_all_exits_2_before_the_database_is_checked(monkeypatch, args):
    def unreachable(*, using):
        raise CommandError("cannot connect to database 'default'", returncode=ExitCode.TEMPFAIL)

    monkeypatch.setattr(clickbridge, "database_ready", unreachable)
    out, err, code = run_command("receivers", *args)
    assert (out, code) == ("", ExitCode.USAGE)
    assert err == (
        "give receiver names or --all, not both and not neither; "
        "'manage.py receivers list' shows the names."
    )


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


@pytest.mark.django_db
def test_list_json_writes_times_as_isoformat_gives_them():
    run_command("receivers", "off", WELCOME, "--for", "1h", "--by", "ann")
    switch = ReceiverSwitch.objects.get()
    assert switch.expires_at is not None
    welcome = listed()[(WELCOME, "post_save")]
    assert welcome["switched_off_at"] == switch.switched_off_at.isoformat()
    assert welcome["expires_at"] == switch.expires_at.isoformat()


def receiver_of(module: str) -> Callable[..., None]:
    """A receiver whose dotted name is in ``module``, as one of that package would be."""

    def on_save(sender: Any, **kwargs: Any) -> None:
        pass

    on_save.__module__, on_save.__qualname__ = module, "on_save"
    return on_save


@pytest.fixture
def receivers_of_django_and_a_third_party():
    """Connected to pre_save, which comes before post_save in the signal order."""
    connected = [
        receiver_of("django.contrib.fake.signals"),
        receiver_of("acme_audit.receivers"),
    ]
    for receiver in connected:
        pre_save.connect(receiver, weak=False)
    yield
    for receiver in connected:
        pre_save.disconnect(receiver)


@pytest.mark.django_db
def test_list_shows_the_projects_receivers_then_third_party_then_djangos(
    receivers_of_django_and_a_third_party,
):
    names = [name for name, _ in listed()]
    assert names[:3] == [PROFILE, WELCOME, "acme_audit.receivers.on_save"]
    assert all(name.startswith("django.") for name in names[3:])
    assert "django.contrib.fake.signals.on_save" in names
    out, _, _ = run_command("receivers", "list")
    assert [line.split()[0] for line in out.splitlines()[1:4]] == names[:3]


@pytest.mark.django_db
def test_off_json_says_what_was_switched_by_whom_until_when_and_why():
    out, err, code = run_command(
        "receivers",
        "off",
        WELCOME,
        "--for",
        "2h",
        "--reason",
        "import",
        "--by",
        "ann",
        format="json",
        verbosity=0,
    )
    assert (err, code) == ("", 0) and out.count("\n") == 1
    data = json.loads(out)
    switch = ReceiverSwitch.objects.get()
    assert data == {
        "database": "default",
        "switched": "off",
        "receivers": [
            {
                "name": WELCOME,
                "state": "off",
                "changed": True,
                "was_off": False,
                "switched_off_at": switch.switched_off_at.isoformat(),
                "switched_off_by": "ann",
                "reason": "import",
                "expires_at": switch.expires_at.isoformat(),
                "seconds_left": data["receivers"][0]["seconds_left"],
            }
        ],
        "refresh_seconds": 5,
    }
    assert 7190 < data["receivers"][0]["seconds_left"] <= 7200
    again = json.loads(run_command("receivers", "off", WELCOME, format="json")[0])
    assert again["receivers"][0]["changed"] is False and again["receivers"][0]["was_off"]
    assert again["receivers"][0]["expires_at"] is None


@pytest.mark.django_db
def test_on_json_lists_what_was_switched_on_and_what_was_off():
    run_command("receivers", "off", WELCOME, PROFILE)
    out, err, code = run_command("receivers", "on", WELCOME, format="json")
    assert (err, code) == ("", 0)
    data = json.loads(out)
    assert (data["switched"], data["all"]) == ("on", False)
    assert [(r["name"], r["state"], r["changed"], r["was_off"]) for r in data["receivers"]] == [
        (WELCOME, "on", True, True)
    ]
    out, _, _ = run_command("receivers", "on", "--all", format="json")
    assert [r["name"] for r in json.loads(out)["receivers"]] == [PROFILE]
    out, err, code = run_command("receivers", "on", "--all", format="json")
    assert (err, code) == ("", 0)
    assert json.loads(out) == {
        "database": "default",
        "switched": "on",
        "all": True,
        "receivers": [],
        "refresh_seconds": 5,
    }


@pytest.mark.django_db
def test_the_documented_keys_of_off_and_on_are_what_they_print():
    doc = (PROJECT_DIR / "docs" / "receivers.md").read_text()
    section = doc.split("- `off --format json` and `on --format json`", 1)[1].split(". Each", 1)[0]
    documented = set(re.findall(r'"(\w+)"', section)) - {"off", "on"}
    off = json.loads(run_command("receivers", "off", WELCOME, format="json")[0])
    on = json.loads(run_command("receivers", "on", WELCOME, format="json")[0])
    printed = set(off) | set(on) | set(off["receivers"][0]) | set(on["receivers"][0])
    assert documented == printed
