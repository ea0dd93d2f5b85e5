"""seed_users under every user model: where the values go, and fields it cannot make up."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, models
from django.utils import timezone

from seeding.errors import SeedArgumentError, SeedSettingError
from seeding.generator import RESERVED_DOMAINS
from seeding.models import SeedRun
from seeding.userfields import SETTING, pg_copy_type
from tests.helpers.commands import run_command
from tests.helpers.seeding import recorded_pks, required_field_values, seed, username_values
from tests.helpers.users import create_user, user_model, users

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]

needs_required_field = pytest.mark.applies_if(
    bool(required_field_values()), reason="this user model has no required field without a default"
)


def field_names() -> set[str]:
    return {f.name for f in user_model()._meta.concrete_fields}


def nothing_written() -> bool:
    return not users().exists() and not SeedRun.objects.exists()


@pytest.fixture(autouse=True)
def debug_on(settings):
    settings.DEBUG = True  # seed_users refuses with DEBUG off; the test runner turns it off


@pytest.mark.parametrize("via", ["bulk", "save"])
def test_seeds_any_user_model_and_records_every_user(via):
    result = seed(150, via=via)
    assert (result.created, result.run_number) == (150, 1)
    assert recorded_pks(1) == set(users().values_list("pk", flat=True))
    names = username_values()
    assert len(names) == 150 and all(name.startswith("seed1-") for name in names)
    username_field = user_model()._meta.get_field(user_model().USERNAME_FIELD)
    if isinstance(username_field, models.EmailField):  # an e-mail-shaped handle
        assert all(name.rsplit("@", 1)[1] in RESERVED_DOMAINS for name in names)
    email = user_model().get_email_field_name()
    assert all(
        value.startswith("seed1-") and value.rsplit("@", 1)[1] in RESERVED_DOMAINS
        for value in users().values_list(email, flat=True)
    )
    for flag, value in (("is_staff", False), ("is_superuser", False), ("is_active", True)):
        if flag in field_names():
            assert set(users().values_list(flag, flat=True)) == {value}
    if {"first_name", "last_name"} <= field_names():
        assert users().exclude(first_name="").exclude(last_name="").count() == 150
    assert all(not user.has_usable_password() for user in users().all()[:5])


@pytest.mark.parametrize("via", ["bulk", "save"])
def test_the_same_seed_gives_the_same_users_whatever_the_batch_size(via):
    seed(120, via=via, batch_size=7)
    first = username_values()
    users().all().delete()
    SeedRun.objects.all().delete()
    seed(120, via=via, batch_size=1000)
    assert username_values() == first


def test_namespaces_real_users_occupy_in_a_unique_field_are_skipped():
    create_user(0, "seed1-real")  # USERNAME_FIELD in namespace 1
    email = user_model()._meta.get_field(user_model().get_email_field_name())
    create_user(1, "other", **{email.name: "seed2-real@example.com"})  # e-mail in namespace 2
    # Only a unique e-mail field could make the run's inserts fail: auth.User's is not.
    assert seed(20).run_number == (3 if email.unique else 2)


@needs_required_field
def test_a_required_field_without_a_value_is_refused_before_anything_is_written():
    with pytest.raises(SeedArgumentError) as refused:
        seed(10, field_values={})
    message = str(refused.value)
    for name in required_field_values():
        assert name in message and f"--field {name}=VALUE" in message
    assert SETTING in message and "\n" not in message
    assert nothing_written()


@needs_required_field
def test_the_command_refuses_with_exit_2_and_one_line_naming_the_field():
    _, err, code = run_command("seed_users", 10, "--via", "bulk")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert all(name in err for name in required_field_values())
    assert nothing_written()
    options = [
        arg
        for name, value in required_field_values().items()
        for arg in ("--field", f"{name}={value}")
    ]
    _, err, code = run_command("seed_users", 10, *options)
    assert code == 0, err
    assert users().count() == 10


@needs_required_field
@pytest.mark.parametrize("via", ["bulk", "save"])
def test_required_field_values_come_from_the_setting_and_the_option_wins(via, settings):
    values = required_field_values()
    settings.SEED_USERS_FIELD_VALUES = dict.fromkeys(values, "fromsetting")
    seed(10, via=via, field_values={})
    for name in values:
        assert set(users().values_list(name, flat=True)) == {"fromsetting"}
    first = next(iter(values))
    seed(10, via=via, field_values={first: "fromoption"})
    assert users().filter(**{first: "fromoption"}).count() == 10


@needs_required_field
def test_given_values_are_validated_by_the_field_before_anything_is_written(settings):
    name = next(iter(required_field_values()))
    limit = user_model()._meta.get_field(name).max_length
    with pytest.raises(SeedArgumentError, match=f"--field {name}: .*at most {limit}"):
        seed(10, field_values={name: "x" * (limit + 1)})
    settings.SEED_USERS_FIELD_VALUES = {name: "x" * (limit + 1)}
    with pytest.raises(SeedSettingError, match=f"{SETTING}\\[{name!r}\\]"):
        seed(10, field_values={})
    assert nothing_written()


def test_a_bad_setting_exits_78_and_writes_nothing(settings):
    settings.SEED_USERS_FIELD_VALUES = {"no_such_field": "x"}
    _, err, code = run_command("seed_users", 10, *_required_options())
    assert code == 78, err
    assert SETTING in err and "no_such_field" in err
    assert nothing_written()


@pytest.mark.parametrize(
    ("field", "message"),
    [("no_such_field", "has no such field"), (None, "sets this field itself")],
)
def test_fields_that_cannot_be_given_are_refused(field, message):
    name = field or user_model().USERNAME_FIELD
    _, err, code = run_command("seed_users", 10, "--field", f"{name}=x", *_required_options())
    assert code == 2
    assert message in err and name in err
    assert nothing_written()


def test_field_option_must_be_name_equals_value():
    _, err, code = run_command("seed_users", 10, "--field", "novalue")
    assert code == 2 and "NAME=VALUE" in err
    assert nothing_written()


@pytest.mark.applies_if(connection.vendor == "postgresql", reason="binary COPY is PostgreSQL's")
def test_binary_copy_types_come_from_the_fields():
    fields = {
        "v": models.CharField(max_length=10),
        "u": models.UUIDField(),
        "b": models.BooleanField(),
        "t": models.DateTimeField(),
        "i": models.IntegerField(),
        "bi": models.BigIntegerField(),
        "e": models.EmailField(),
    }
    types = {name: pg_copy_type(field, connection) for name, field in fields.items()}
    assert types == {
        "v": "varchar",
        "u": "uuid",
        "b": "boolean",
        "t": "timestamp with time zone",
        "i": "integer",
        "bi": "bigint",
        "e": "varchar",
    }
    now = timezone.now()
    row = ("abc", uuid.uuid4(), True, now, 2**31 - 1, 2**63 - 1, "a@example.com")
    with connection.cursor() as cursor:
        columns = ", ".join(f"{name} {f.db_type(connection)}" for name, f in fields.items())
        cursor.execute(f"CREATE TEMPORARY TABLE copy_types ({columns})")
        with cursor.cursor.copy(
            f"COPY copy_types ({', '.join(fields)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(list(types.values()))
            copy.write_row(row)
        cursor.execute(f"SELECT {', '.join(fields)} FROM copy_types")
        assert cursor.fetchall() == [row]


def _required_options() -> list[str]:
    return [
        arg
        for name, value in required_field_values().items()
        for arg in ("--field", f"{name}={value}")
    ]
