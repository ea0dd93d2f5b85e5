"""docs/cron.md's crontab, run as cron runs it.

Every line of every ```cron block of the document (its ``NAME=value`` lines
passed on as cron passes them) runs verbatim, only ``/srv/app`` replaced by a
directory the tests deploy the project to, under ``env -i PATH=/usr/bin:/bin
HOME=<a home> /bin/sh -c '<line>'`` in that home: no DATABASE_URL, no
activated virtual environment, no settings module. The deployed copy is the
project's packages and manage.py (a copy, not links: the settings find
``.env`` beside their own resolved path, and the editable install would lead
a symlink back to this checkout, whose ``.env`` other runs share), ``.venv`` a
link to this interpreter's environment, and a ``.env`` naming the test
database: the one file every line reaches the database through.

A line is silent and exits 0 when its work goes well, and when another run
holds its lock (it skips, or waits for the lock and then works); it prints one
line and exits non-zero on a real failure. A line that drifts from the code
(an option renamed, a suffix added) fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from commands.exitcodes import ExitCode
from dbtools.locks import database_lock
from profiles.backfill import profiles_backfill
from profiles.models import Profile, WelcomeMail
from profiles.welcome.sync import LOCK_NAME as SYNC_LOCK
from profiles.welcome.sync import welcome_mails_sync
from tests.commands.test_exitcodes import markdown_exit_codes
from tests.helpers.locking import waits_for_run_lock
from tests.helpers.processes import PROJECT_DIR, database_url, spawned_as_cron, wait_until
from tests.helpers.users import bulk_users, users

CRON_DOC = PROJECT_DIR / "docs" / "cron.md"
DOCUMENTED_DIRECTORY = "/srv/app"
# What every documented line is: cron's sh starts in $HOME, so it changes to the
# project and runs the project's own interpreter.
LINE = re.compile(r"cd /srv/app && \.venv/bin/python manage\.py (?P<args>\S.*)")
# What would make the shell do more than run the command: a list or pipe (|| [ $? ... ],
# ; or &), a redirection, an expansion.
SHELL_SYNTAX = set("|&;<>$`")
# The settings module the deployed lines use (none is set in cron's environment).
DEPLOYED_SETTINGS = "cliproject.settings"

# The run lock each command takes ("--check" counts under its run's lock too).
LOCKS = {
    "backfill_profiles": "backfill_profiles",
    "welcome_mails sync": SYNC_LOCK,
    "welcome_mails send": "welcome_mails_send",
}

pytestmark = [
    # A real process sees only committed rows.
    pytest.mark.django_db(transaction=True),
    pytest.mark.applies_if(
        os.environ.get("DJANGO_SETTINGS_MODULE", DEPLOYED_SETTINGS) == DEPLOYED_SETTINGS,
        reason="cron's environment names no settings module: the lines run the project's own",
    ),
]


# -- the document --


@dataclass(frozen=True)
class CronLine:
    schedule: tuple[str, ...]  # minute, hour, day of month, month, day of week
    command: str
    environment: dict[str, str] = field(default_factory=dict)  # NAME=value lines above it

    @property
    def args(self) -> list[str]:
        match = LINE.fullmatch(self.command)
        assert match, f"not 'cd /srv/app && .venv/bin/python manage.py ...': {self.command}"
        return shlex.split(match["args"])

    @property
    def name(self) -> str:
        """``backfill_profiles``, ``welcome_mails sync``: the command and subcommand."""
        args = self.args
        return " ".join(args[:2]) if args[0] == "welcome_mails" else args[0]

    @property
    def check(self) -> bool:
        return "--check" in self.args

    @property
    def lock(self) -> str | None:
        return LOCKS.get(self.name)

    def __str__(self) -> str:
        return f"{' '.join(self.schedule)} {self.command}"


ENVIRONMENT_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def crontab(text: str) -> list[CronLine]:
    """The lines of every ```cron block, in order, as one crontab: a ``NAME=value``
    line sets NAME for the lines after it, as cron does."""
    lines: list[CronLine] = []
    environment: dict[str, str] = {}
    in_block = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("```"):
            in_block = not in_block and line == "```cron"
            continue
        if not in_block or not line or line.startswith("#"):
            continue
        if (setting := ENVIRONMENT_LINE.fullmatch(line)) and not line[0].isdigit():
            value = setting[2].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            environment[setting[1]] = value
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, f"not a crontab line: {line}"
        lines.append(CronLine(tuple(fields[:5]), fields[5], dict(environment)))
    return lines


DOCUMENTED = crontab(CRON_DOC.read_text())


def documented(name: str, *, check: bool) -> CronLine:
    found = [line for line in DOCUMENTED if line.name == name and line.check == check]
    assert len(found) == 1, f"docs/cron.md should have one line for {name} (check={check})"
    return found[0]


def expand(field_text: str, low: int, high: int) -> set[int]:
    """The values a crontab field matches: ``*``, ``N``, ``A-B``, each with ``/STEP``,
    in a comma list."""
    values: set[int] = set()
    for part in field_text.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (int(n) for n in span.split("-"))
        else:
            first = last = int(span)
            if step:
                last = high
        values.update(range(first, last + 1, int(step or 1)))
    return values


def starts(line: CronLine) -> set[tuple[int, int]]:
    """The (hour, minute) pairs of a day at which ``line`` starts."""
    minute, hour, *rest = line.schedule
    assert rest == ["*", "*", "*"], f"every day: {line}"
    return {(h, m) for h in expand(hour, 0, 23) for m in expand(minute, 0, 59)}


# -- the lines, read --


def test_the_crontab_has_a_line_for_every_cron_command():
    names = sorted((line.name, line.check) for line in DOCUMENTED)
    assert names == sorted(
        [
            ("backfill_profiles", False),
            ("backfill_profiles", True),
            ("welcome_mails sync", False),
            ("welcome_mails sync", True),
            ("welcome_mails send", False),
            ("welcome_mails status", True),
        ]
    )


def assert_only_the_command(line: CronLine) -> None:
    """``cd /srv/app && .venv/bin/python manage.py ARGS``, and the shell does nothing
    but run it: no ``|| [ $? -eq 75 ]`` (cron mails output whatever the status), no
    pipe, redirection, expansion or quoting."""
    match = LINE.fullmatch(line.command)
    assert match, f"not 'cd /srv/app && .venv/bin/python manage.py ...': {line}"
    for arg in line.args:
        assert not SHELL_SYNTAX & set(arg), f"{arg!r} is shell syntax: {line}"
    assert line.args == match["args"].split(), f"quoted or escaped: {line}"


@pytest.mark.parametrize(
    "suffix",
    [" || [ $? -eq 75 ]", " || true", " | logger", " > /dev/null", " 2>&1", "; echo", " &"],
)
def test_a_shell_suffix_is_caught(suffix):
    """Regression: a line ending in '|| [ $? -eq 75 ]' passed (``assert line.args``)."""
    line = documented("backfill_profiles", check=False)
    with pytest.raises(AssertionError):
        assert_only_the_command(CronLine(line.schedule, line.command + suffix))


def test_every_line_changes_to_the_project_and_runs_its_python():
    for line in DOCUMENTED:
        assert_only_the_command(line)
        # cron turns an unescaped % into a newline.
        assert "%" not in line.command, line
        assert "-v" in line.args and line.args[line.args.index("-v") + 1] == "0", line
        assert "DATABASE_URL" not in line.command, f"the database comes from .env: {line}"


def test_no_two_lines_that_take_the_same_lock_start_together():
    """Two runs of one lock started at once: one of them would only skip, or a check
    would count while the run writes."""
    for name in LOCKS:
        sharing = [line for line in DOCUMENTED if line.name == name]
        for i, line in enumerate(sharing):
            for other in sharing[i + 1 :]:
                assert not starts(line) & starts(other), f"{line}\n{other}"


def test_each_check_waits_for_its_runs_lock():
    for line in DOCUMENTED:
        if line.check and line.lock is not None:
            assert "--wait" in line.args, line


def test_the_exit_codes_it_lists_are_the_enums():
    table = markdown_exit_codes(CRON_DOC)
    assert set(table) == set(ExitCode) - {ExitCode.REFUSED}  # 77: seed_users only
    for code, meaning in table.items():
        assert meaning, code


def test_its_75_row_names_every_cause_the_enum_does():
    """Regression: the row left out timeouts (a batch timed out: BatchTimedOut) and a
    lost connection, which the README and docs/operations.md list."""
    row = markdown_exit_codes(CRON_DOC)[ExitCode.TEMPFAIL]
    for cause in ("holds the lock", "cannot be reached", "lost", "timed out"):
        assert cause in row, cause


def test_a_sharded_backfill_is_checked_shard_by_shard():
    """An unsharded --check takes the unsharded lock, not the shards' (backfill_profiles:K/N):
    the shard loop the document gives comes with a check per shard, and it says why."""
    loops = [line for line in CRON_DOC.read_text().splitlines() if line.startswith("for k in")]
    runs = [line for line in loops if "--check" not in line]
    checks = [line for line in loops if "--check" in line]
    assert runs and checks, loops
    for line in runs + checks:
        assert "--shard $k/4" in line, line
    assert all("--wait" in line for line in checks), checks
    text = " ".join(CRON_DOC.read_text().split())
    assert "an unsharded `--check` does not wait for them" in text


# -- the lines, run --


@dataclass(frozen=True)
class Deployment:
    directory: Path  # what /srv/app is in the document
    home: Path  # cron's working directory

    def write_env(self, **variables: str) -> None:
        text = "".join(f"{name}={value}\n" for name, value in variables.items())
        (self.directory / ".env").write_text(text)
        (self.directory / ".env").chmod(0o600)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    root = tmp_path_factory.mktemp("cron")
    directory, home = root / "srv-app", root / "home"
    home.mkdir()
    directory.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in sorted(PROJECT_DIR.iterdir()):
        if (package / "__init__.py").is_file() and package.name not in ("tests", "bench"):
            shutil.copytree(package, directory / package.name, ignore=ignore)
    shutil.copy2(PROJECT_DIR / "manage.py", directory / "manage.py")
    (directory / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return Deployment(directory=directory, home=home)


@pytest.fixture
def deployed(deployment: Deployment) -> Deployment:
    """The deployment, its .env naming this run's test database."""
    deployment.write_env(**database_variables())
    return deployment


def database_variables() -> dict[str, str]:
    variables = {"DATABASE_URL": database_url()}
    if settings.BACKFILL_LOCK_DATABASE:
        variables["LOCK_DATABASE_URL"] = database_url(settings.BACKFILL_LOCK_DATABASE)
    return variables


@contextmanager
def started(line: CronLine, deployment: Deployment) -> Iterator[subprocess.Popen[str]]:
    """``line`` under cron's environment, in the background; killed if still running."""
    command = line.command.replace(DOCUMENTED_DIRECTORY, str(deployment.directory))
    with spawned_as_cron(command, home=deployment.home, environment=line.environment) as proc:
        yield proc


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def finished(proc: subprocess.Popen[str]) -> Outcome:
    out, err = proc.communicate(timeout=120)
    return Outcome(proc.returncode, out, err)


def run(line: CronLine, deployment: Deployment) -> Outcome:
    with started(line, deployment) as proc:
        return finished(proc)


def assert_silent_success(outcome: Outcome, line: CronLine) -> None:
    assert (outcome.returncode, outcome.stdout, outcome.stderr) == (0, "", ""), line


def assert_one_line_failure(outcome: Outcome, line: CronLine, *, says: str = "") -> None:
    assert outcome.returncode != 0 and outcome.stdout == "", (line, outcome)
    assert len(outcome.stderr.splitlines()) == 1 and outcome.stderr.endswith("\n"), (line, outcome)
    assert "Traceback" not in outcome.stderr
    assert says in outcome.stderr, (line, outcome)


def test_every_line_succeeds_in_silence(deployed):
    bulk_users(40)
    for line in DOCUMENTED:
        assert_silent_success(run(line, deployed), line)
    # The silence was work done: the backfill's, the sync's and the send's.
    every = users().count()
    assert Profile.objects.count() == WelcomeMail.objects.count() == every == 40
    assert WelcomeMail.objects.filter(status=WelcomeMail.Status.SENT).count() == every


def test_every_line_is_silent_while_another_run_holds_its_lock(deployed):
    """A run skips: exit 0, no output, nothing done. A line that waits (a check, under
    its run's lock) is let in once it waits, and works in silence."""
    bulk_users(20)
    welcome_mails_sync(using="default", batch_size=100, limit=10)  # 10 to send, 10 to make
    for line in [line for line in DOCUMENTED if not line.check]:
        before = (Profile.objects.count(), WelcomeMail.objects.count(), sent())
        assert_silent_while_locked(line, deployed)
        if "--wait" not in line.args:
            assert (Profile.objects.count(), WelcomeMail.objects.count(), sent()) == before, line
    # Every user done, as the checks expect them to be.
    profiles_backfill(using="default", batch_size=100)
    welcome_mails_sync(using="default", batch_size=100)
    WelcomeMail.objects.update(status=WelcomeMail.Status.SENT)
    for line in [line for line in DOCUMENTED if line.check]:
        assert_silent_while_locked(line, deployed)


def assert_silent_while_locked(line: CronLine, deployment: Deployment) -> None:
    with run_locks_held() as release, started(line, deployment) as proc:
        if line.lock is not None and "--wait" in line.args:
            # Let it in only once it queues for its lock (the lock view), as the run
            # before it would, by ending.
            wait_until(waits_for_a_lock, proc, timeout=60)
            release()
        assert_silent_success(finished(proc), line)


def test_a_missing_database_is_one_line_from_every_line(deployment, tmp_path):
    if connection.vendor == "sqlite":
        missing = f"sqlite:///{tmp_path / 'no-such-directory' / 'db.sqlite3'}"
    else:
        missing = f"{database_url().rsplit('/', 1)[0]}/{connection.settings_dict['NAME']}_missing"
    deployment.write_env(DATABASE_URL=missing)
    for line in DOCUMENTED:
        outcome = run(line, deployment)
        assert_one_line_failure(outcome, line, says="DATABASE_URL")
        assert outcome.returncode == ExitCode.CONFIG


def test_an_unmigrated_database_is_one_line_from_every_line(deployment, tmp_path):
    with empty_database(tmp_path) as url:
        deployment.write_env(DATABASE_URL=url)
        for line in DOCUMENTED:
            outcome = run(line, deployment)
            assert_one_line_failure(outcome, line, says="not migrated")
            assert outcome.returncode == ExitCode.FAILED


@pytest.mark.applies_if(connection.vendor == "sqlite", "a server has no file to create")
def test_a_missing_sqlite_file_is_78_and_stays_missing(deployment, tmp_path):
    """Regression: SQLite created an empty file at the mistyped path, every line exited 1
    "not migrated", and running the advised migrate made the monitoring line pass."""
    path = tmp_path / "db.sqlite3"  # its directory exists
    deployment.write_env(DATABASE_URL=f"sqlite:///{path}")
    for line in DOCUMENTED:
        outcome = run(line, deployment)
        assert_one_line_failure(outcome, line, says="fix DATABASE_URL")
        assert str(path) in outcome.stderr and "manage.py migrate" in outcome.stderr
        assert outcome.returncode == ExitCode.CONFIG
    assert list(tmp_path.iterdir()) == []


def test_users_without_a_profile_fail_the_monitoring_line(deployed):
    bulk_users(5)
    line = documented("backfill_profiles", check=True)
    outcome = run(line, deployed)
    assert_one_line_failure(outcome, line, says="5 user(s) lack a profile")
    assert outcome.returncode == ExitCode.FAILED


def test_users_without_a_welcome_record_fail_their_monitoring_line(deployed):
    bulk_users(5)
    profiles_backfill(using="default", batch_size=100)
    line = documented("welcome_mails sync", check=True)
    outcome = run(line, deployed)
    assert_one_line_failure(outcome, line, says="5 user(s) lack a welcome-mail record")
    assert outcome.returncode == ExitCode.FAILED


def test_a_failed_welcome_mail_fails_the_status_line(deployed):
    bulk_users(2)
    profiles_backfill(using="default", batch_size=100)
    welcome_mails_sync(using="default", batch_size=100)
    WelcomeMail.objects.update(status=WelcomeMail.Status.FAILED, reason="550 no such user")
    line = documented("welcome_mails status", check=True)
    outcome = run(line, deployed)
    assert_one_line_failure(outcome, line, says="2 welcome mail(s) failed")
    assert outcome.returncode == ExitCode.FAILED


# -- helpers --


def sent() -> int:
    return WelcomeMail.objects.filter(status=WelcomeMail.Status.SENT).count()


@contextmanager
def run_locks_held() -> Iterator[Callable[[], None]]:
    """Every run lock a documented line takes, held here as another run would hold it;
    the block gets the function that lets them go early."""
    alias = settings.BACKFILL_LOCK_DATABASE or "default"
    with ExitStack() as held:
        for name in LOCKS.values():
            held.enter_context(database_lock(name, using=alias))
        yield held.close


def waits_for_a_lock() -> bool:
    """Does another process wait for one of the run locks now?"""
    return waits_for_run_lock(connection, LOCKS.values())


@contextmanager
def empty_database(tmp_path: Path) -> Iterator[str]:
    """The URL of a database that exists and has no tables, dropped at the end."""
    if connection.vendor == "sqlite":
        path = tmp_path / "empty.sqlite3"
        with closing(sqlite3.connect(path)) as created:
            created.execute("PRAGMA user_version = 1")  # a write: the file has its header
        yield f"sqlite:///{path}"
        return
    name = f"{connection.settings_dict['NAME']}_unmigrated"
    quoted = connection.ops.quote_name(name)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
        cursor.execute(f"CREATE DATABASE {quoted}")
    try:
        yield f"{database_url().rsplit('/', 1)[0]}/{name}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
