"""What docs/operations.md promises an operator, in real manage.py processes: a server
that never answers is given up within DATABASE_CONNECT_TIMEOUT (exit 75), LOCK_DATABASE_URL
takes the backfill's lock on a connection of its own, and no command's output shows
personal data or secrets ("Output hygiene").

Random argument lists (exit 2, nothing written) are fed in-process:
tests/commands/test_argument_lists.py. Faults: tests/system/test_faults.py.
"""

from __future__ import annotations

import json
import secrets
import socket
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from commands.exitcodes import ExitCode
from dbtools.locks import database_lock
from profiles.models import Profile
from tests.helpers.commands import unreachable_database_url
from tests.helpers.processes import database_url
from tests.helpers.users import bulk_users

User = get_user_model()

EXIT_CODES = {int(code) for code in ExitCode}


# -- connect timeout --


def test_a_server_that_never_answers_is_given_up_within_the_connect_timeout(manage):
    # A socket that completes the TCP handshake (the kernel's backlog) but never speaks.
    # SQLite has no server: its runs check a PostgreSQL URL (psycopg is a dev dependency).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        scheme = "mysql" if connection.vendor == "mysql" else "postgres"
        url = f"{scheme}://nobody@127.0.0.1:{port}/none"
        started = time.monotonic()
        result = manage(
            "backfill_profiles", env={"DATABASE_URL": url, "DATABASE_CONNECT_TIMEOUT": "2"}
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 75, result.stderr
    assert "cannot connect to database 'default'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert elapsed < 2 + 8  # the timeout plus interpreter start-up on a busy machine


# -- the backfill's lock on a connection of its own --


@pytest.mark.django_db(transaction=True)
def test_lock_database_url_takes_the_lock_on_its_own_connection(manage):
    bulk_users(100)
    direct = {"LOCK_DATABASE_URL": database_url()}
    with database_lock("backfill_profiles", using="default"):  # held elsewhere
        held = manage("backfill_profiles", env=direct)
    assert held.returncode == 75 and "holds the lock" in held.stderr
    result = manage("backfill_profiles", env=direct)
    assert result.returncode == 0, result.stderr
    assert Profile.objects.count() == 100
    refused = {"LOCK_DATABASE_URL": unreachable_database_url()}
    broken = manage("backfill_profiles", env=refused)
    assert broken.returncode == 75, broken.stderr  # one that needs fixing: test_dbready.py
    assert "cannot connect to database 'locks'" in broken.stderr


# -- nothing secret in the output --

SECRET_KEY = secrets.token_urlsafe(50)


@pytest.mark.django_db(transaction=True)
def test_no_output_shows_personal_data_or_secrets(manage):
    # The console mail backend prints the welcome mails by design (it is the
    # development transport, not the command's output), so mail goes nowhere here.
    env = {
        "SECRET_KEY": SECRET_KEY,
        "DEBUG": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    if connection.vendor == "postgresql":  # trust auth: a password in the URL is accepted
        env["DATABASE_URL"] = database_url().replace("://postgres@", "://postgres:Db-Pa55word@")
    runs = [
        ("seed_users", "40", "--via", "save", "--password", "Pl41n-Password!", "--seed", "1"),
        ("seed_users", "60", "--seed", "2", "--format", "json"),
        ("seed_users", "10", "--dry-run"),
        ("profiles_status",),
        ("profiles_status", "--format", "json"),
        ("backfill_profiles", "--check"),
        ("backfill_profiles", "--dry-run"),
        ("backfill_profiles",),
        ("backfill_profiles", "--format", "json"),
        ("receivers", "list"),
        ("receivers", "list", "--format", "json"),
        ("purge_seeded", "--dry-run"),
        ("signal_matrix",),
        ("seed_users", "0"),
        ("seed_users", "5", "--locale", "xx_XX"),
    ]
    output = ""
    for verbosity in ("0", "1"):
        for args in runs:
            result = manage(*args, "-v", verbosity, env=env)
            assert result.returncode in EXIT_CODES
            output += result.stdout + result.stderr
    failed = manage(
        "profiles_status",
        env={
            **env,
            "DATABASE_URL": unreachable_database_url().replace(
                "://nobody@", "://nobody:Db-Pa55word@"
            ),
        },
    )
    output += failed.stdout + failed.stderr
    users = list(User.objects.values_list("username", "email", "password"))
    assert len(users) == 2 * (40 + 60)  # each seeding run happens at -v 0 and at -v 1
    for username, email, password_hash in users:
        assert username not in output
        assert email not in output
        assert password_hash not in output
    for secret in (SECRET_KEY, "Pl41n-Password!", "Db-Pa55word"):
        assert secret not in output
    json.loads(manage("profiles_status", "--format", "json", env=env).stdout)
