"""Arguments the database cannot hold are refused before anything is written; stops are counted."""

from __future__ import annotations

import signal

import pytest
from django.core.management.color import no_style
from django.db import connection
from faker.config import AVAILABLE_LOCALES

from commands.management.commands import seed_users
from seeding.errors import SeedArgumentError
from seeding.models import SeedRun
from seeding.services import users_seed
from seeding.userfields import UserColumns
from tests.helpers.commands import run_command
from tests.helpers.seeding import required_field_values, seed
from tests.helpers.stopping import StopAtCheck
from tests.helpers.users import create_user, user_model, users

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]

PK = user_model()._meta.pk
integer_keys = pytest.mark.applies_if(
    PK.get_internal_type() in ("AutoField", "BigAutoField", "SmallAutoField"),
    reason="the user model's keys are not numbered by the database",
)


@pytest.fixture(autouse=True)
def debug_on(settings):
    settings.DEBUG = True  # seed_users refuses with DEBUG off; the test runner turns it off


def options() -> list[str]:
    return [
        arg
        for name, value in required_field_values().items()
        for arg in ("--field", f"{name}={value}")
    ]


def refused(*args: str) -> str:
    _, err, code = run_command("seed_users", *args, *options())
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert not SeedRun.objects.exists()
    return err


def test_a_seed_the_column_cannot_hold_is_refused():
    assert "--seed must be at most 9223372036854775807" in refused("10", "--seed", str(2**63))
    assert not users().exists()
    _, err, code = run_command("seed_users", "10", "--seed", str(2**63 - 1), *options())
    assert code == 0, err


def test_a_count_a_seed_run_cannot_record_is_refused():
    assert "COUNT must be at most" in refused(str(2**63), "--max-count", str(2**63))
    assert not users().exists()


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_count_above_the_bound_is_refused_unless_max_count_raises_it(dry_run):
    err = refused(str(10_000_001), *dry_run)
    assert err.strip() == (
        "COUNT 10000001 is more than 10000000, the most one run seeds unless "
        "--max-count says otherwise; pass --max-count 10000001 if you mean it."
    )
    assert "is more than 40" in refused("41", "--max-count", "40", *dry_run)
    assert not users().exists()
    _, err, code = run_command("seed_users", "40", "--max-count", "40", *dry_run, *options())
    assert code == 0, err
    with pytest.raises(SeedArgumentError, match="COUNT 11 is more than 10"):
        seed(11, max_count=10)


def test_max_count_takes_a_positive_whole_number():
    for bad in ("0", "-1", "many"):
        _, err, code = run_command("seed_users", "5", "--max-count", bad, *options())
        assert code == 2 and "--max-count" in err, err
    assert not users().exists()


@integer_keys
@pytest.mark.django_db(transaction=True)
def test_a_count_beyond_the_keys_left_is_refused():
    _, last = connection.ops.integer_field_range(PK.get_internal_type())
    top = create_user(0, "top", pk=last - 5)
    try:
        err = refused("6")
        assert "5 value(s) left" in err and str(last) in err
        assert list(users().values_list("pk", flat=True)) == [top.pk]
        assert seed(5).created == 5  # exactly what is left still fits
    finally:
        # Neither a rollback nor the flush lowers SQLite's AUTOINCREMENT or
        # MySQL's AUTO_INCREMENT: without this, every later insert would fail.
        users().all().delete()
        sequence = {"table": user_model()._meta.db_table, "column": PK.column}
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_by_name_sql(no_style(), [sequence]):
                cursor.execute(sql)


def test_a_locale_list_longer_than_its_column_is_refused():
    locales = sorted(AVAILABLE_LOCALES)[:40]
    err = refused("10", *[arg for locale in locales for arg in ("--locale", locale)])
    assert "--locale" in err and "at most 200" in err
    assert not users().exists()
    with pytest.raises(SeedArgumentError):
        seed(10, locales=locales)


def test_an_interrupted_dry_run_reports_what_it_generated(monkeypatch):
    result = seed(500, dry_run=True, stop=StopAtCheck(2, signal.SIGINT))
    assert (result.generated, result.requested, result.stop_signal) == (200, 500, signal.SIGINT)

    def interrupted(**arguments):
        return users_seed(**{**arguments, "stop": StopAtCheck(2, signal.SIGINT)})

    monkeypatch.setattr(seed_users, "users_seed", interrupted)
    out, err, code = run_command("seed_users", 500, "--dry-run", "--batch-size", 100, *options())
    assert code == 130
    assert "generated and validated 200 of 500 user(s)" in out
    # The one line, all that -v 0 (cron) shows, says how far it got too.
    assert err.strip() == (
        "interrupted by SIGINT after generating and validating 200 of 500 user(s); "
        "dry run, nothing was written."
    )
    out, err, code = run_command(
        "seed_users", 500, "--dry-run", "--batch-size", 100, "-v", "0", *options()
    )
    assert (out, code) == ("", 130)
    assert "after generating and validating 200 of 500 user(s)" in err
    assert not users().exists()


def test_a_dry_run_interrupted_by_keyboard_interrupt_stops_as_a_real_run_does(monkeypatch):
    """Without a signal handler (called from code), Ctrl-C is a KeyboardInterrupt."""
    validated = []

    def too_long(self, batch):
        validated.append(len(batch))
        if len(validated) == 3:
            raise KeyboardInterrupt
        return None

    monkeypatch.setattr(UserColumns, "too_long", too_long)
    try:
        result = seed(1000, dry_run=True)
    except KeyboardInterrupt:  # would end the whole test session
        pytest.fail("the KeyboardInterrupt escaped the dry run")
    assert (result.generated, result.stop_signal, result.stopped) == (200, signal.SIGINT, "signal")
    assert not users().exists()
