"""The receivers' insert-if-missing statements: the range statement they ran before
against the one row they run now.

Group ``profile_receiver``: ``seed_users --via save`` through its service, as
``seed_users_save`` runs it, with each receiver's statement as before (the
backfill's set-based ``INSERT ... SELECT`` over the range of one user) or as
now (``INSERT ... VALUES``, :func:`profiles.sql.insert_missing_for_user`), and
the plain ``create()`` loop with today's receivers, the bar ``--via save`` is
held to (at most 1.1x its time). The cases before are today's code with the
statement swapped for the case.

Group ``receiver_statement``: the statement alone, once per user of a bulk
seed, in transactions of 1000 as a seed's batch holds it: what each form costs
without the user's own insert, the mail or the rest of save().
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any
from unittest import mock

from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from bench.cases.seeding import fake_users, seed_users_run, users_create_loop
from bench.cases.users import BATCH_SIZE
from bench.registry import case
from profiles import sql
from profiles.models import Profile, WelcomeMail
from profiles.services import profile_defaults
from profiles.welcome.records import pending_values
from seeding.generator import FakeUsers

RECEIVER = "profile_receiver"
STATEMENT = "receiver_statement"

User = get_user_model()

one_row_insert = sql.insert_missing_for_user


def range_insert(
    connection: BaseDatabaseWrapper,
    *,
    user_pk: Any,
    values: Mapping[str, object],
    model: type[Model] = Profile,
) -> bool:
    """The receivers' statement before: the backfill's, over the range of one user."""
    created = sql.insert_missing(
        connection, model=model, values=values, first_pk=user_pk, last_pk=user_pk
    )
    return created == 1


@contextlib.contextmanager
def range_statement_for(*models: type[Model]) -> Iterator[None]:
    """The receivers write the rows of ``models`` with the range statement, as before."""

    def insert(
        connection: BaseDatabaseWrapper,
        *,
        user_pk: Any,
        values: Mapping[str, object],
        model: type[Model] = Profile,
    ) -> bool:
        form = range_insert if model in models else one_row_insert
        return form(connection, user_pk=user_pk, values=values, model=model)

    with mock.patch.object(sql, "insert_missing_for_user", insert):
        yield


# --- group profile_receiver: seed_users --via save, the statement before and now ----


@case("receiver_range_statements", group=RECEIVER, reference=True, size_divisor=10)
def receiver_range_statements(size: int, using: str) -> int:
    """seed_users --via save, both receivers' inserts the range statement: before."""
    with range_statement_for(Profile, WelcomeMail):
        return seed_users_run(size, using, via="save")


@case("receiver_one_row_profile", group=RECEIVER, size_divisor=10)
def receiver_one_row_profile(size: int, using: str) -> int:
    """seed_users --via save, the profile one row, the welcome record the range statement."""
    with range_statement_for(WelcomeMail):
        return seed_users_run(size, using, via="save")


@case("receiver_one_row", group=RECEIVER, size_divisor=10)
def receiver_one_row(size: int, using: str) -> int:
    """seed_users --via save, both receivers' inserts one row: now."""
    return seed_users_run(size, using, via="save")


@case("receiver_create_loop", group=RECEIVER, setup=fake_users, size_divisor=10)
def receiver_create_loop(size: int, using: str, *, users: FakeUsers) -> int:
    """A plain User.objects.create loop, same data and receivers (now): the bar for --via save.

    As users_create_loop: one transaction per 1000.
    """
    return users_create_loop(size, using, users=users)


# --- group receiver_statement: the statement alone ---------------------------------


def users_without_rows(size: int, using: str) -> dict[str, Any]:
    """``size`` users by seed_users --via bulk: no profile, no welcome-mail record."""
    seed_users_run(size, using, via="bulk")
    pks = User._default_manager.db_manager(using).order_by("pk").values_list("pk", flat=True)
    return {"pks": list(pks)}


def _each_user(
    pks: list[Any], using: str, *, insert: Any, model: type[Model], values: Mapping[str, object]
) -> int:
    connection = connections[using]
    created = 0
    for start in range(0, len(pks), BATCH_SIZE):
        with transaction.atomic(using=using):
            for pk in pks[start : start + BATCH_SIZE]:
                created += insert(connection, user_pk=pk, values=values, model=model)
    return created


@case(
    "statement_range_profile",
    group=STATEMENT,
    reference=True,
    setup=users_without_rows,
    counts=Profile,
)
def statement_range_profile(size: int, using: str, *, pks: list[Any]) -> int:
    """A profile per user, the range statement (before), one transaction per 1000."""
    return _each_user(pks, using, insert=range_insert, model=Profile, values=profile_defaults())


@case("statement_one_row_profile", group=STATEMENT, setup=users_without_rows, counts=Profile)
def statement_one_row_profile(size: int, using: str, *, pks: list[Any]) -> int:
    """A profile per user, one row (now), one transaction per 1000."""
    return _each_user(pks, using, insert=one_row_insert, model=Profile, values=profile_defaults())


@case("statement_range_welcome", group=STATEMENT, setup=users_without_rows, counts=WelcomeMail)
def statement_range_welcome(size: int, using: str, *, pks: list[Any]) -> int:
    """A welcome-mail record per user, the range statement (before)."""
    return _each_user(pks, using, insert=range_insert, model=WelcomeMail, values=pending_values())


@case("statement_one_row_welcome", group=STATEMENT, setup=users_without_rows, counts=WelcomeMail)
def statement_one_row_welcome(size: int, using: str, *, pks: list[Any]) -> int:
    """A welcome-mail record per user, one row (now)."""
    return _each_user(pks, using, insert=one_row_insert, model=WelcomeMail, values=pending_values())
