# factory_boy's declarations are untyped.
# mypy: disallow-untyped-calls=False
"""Group ``insert_users``: ways of creating users, against the raw driver's speed.

Every user is the same kind of row: Faker-like names, password ``"!"`` (unusable,
so no hashing is measured), ``date_joined`` now, the model's default flags.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connections, transaction
from django.utils import timezone
from factory.declarations import LazyAttributeSequence
from factory.django import DjangoModelFactory
from factory.faker import Faker as FakerDeclaration
from factory.random import reseed_random
from faker import Faker

from bench.registry import case
from seeding.userfields import pg_copy_type

GROUP = "insert_users"
BATCH_SIZE = 1000
# Rows per INSERT of the SQLite reference: the fastest measured (users_raw_driver says).
SQLITE_RAW_ROWS_PER_STATEMENT = 100

User = get_user_model()

# Tells the repetitions' rows apart, so names are unique per repetition too.
_repetitions = itertools.count()


def rows_pregenerate(size: int, using: str) -> dict[str, Any]:
    """Rows of ``auth_user`` as the driver takes them, adapted by Django's own fields."""
    connection = connections[using]
    fields = [f for f in User._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    tag = next(_repetitions)
    rows = []
    for i in range(size):
        user = User(
            username=f"raw{tag}.{i}",
            first_name="Raw",
            last_name=f"User {i}",
            email=f"raw{tag}.{i}@example.com",
            password="!",
            date_joined=now,
        )
        rows.append(tuple(f.get_db_prep_save(getattr(user, f.attname), connection) for f in fields))
    return {"fields": fields, "rows": rows}


@case("users_raw_driver", group=GROUP, reference=True, setup=rows_pregenerate)
def users_raw_driver(
    size: int, using: str, *, fields: list[Any], rows: list[tuple[Any, ...]]
) -> int:
    """Pre-generated rows by the fastest path of the DB-API driver of Django's own connection.

    PostgreSQL: psycopg binary COPY FROM STDIN, each column's type set from its
    field, sent from a thread (QueuedLibpqWriter) as seed_users does. SQLite:
    sqlite3 multi-row INSERT ... VALUES (...), (...), 100 rows a statement
    (within the build's bind-parameter limit). MariaDB/MySQL: MySQLdb
    executemany, which sends multi-row INSERTs. One transaction, opened and
    committed by transaction.atomic.

    Measured side by side (2-core VM, load 1.4-3): binary COPY 1.12-1.24x text
    COPY, the queued writer 1.01-1.08x more; on SQLite 100 rows a statement
    1.34-1.37x one row per statement in client CPU (10: 1.20x, 1000: 1.26-1.31x);
    on MariaDB statements of 300 to 10,000 rows of our own were no faster than
    executemany's (within the 10% noise).
    """
    connection = connections[using]
    qn = connection.ops.quote_name
    target = f"{qn(User._meta.db_table)} ({', '.join(qn(f.column) for f in fields)})"
    with transaction.atomic(using=using):
        driver_connection = connection.connection
        if connection.vendor == "postgresql":
            from psycopg.copy import QueuedLibpqWriter  # psycopg is the postgres extra

            binary = f"COPY {target} FROM STDIN (FORMAT BINARY)"
            with (
                driver_connection.cursor() as cursor,
                cursor.copy(binary, writer=QueuedLibpqWriter(cursor)) as copy,
            ):
                copy.set_types([pg_copy_type(f, connection) for f in fields])
                for row in rows:
                    copy.write_row(row)
        elif connection.vendor == "sqlite":
            with contextlib.closing(driver_connection.cursor()) as cursor:
                _sqlite_multirow_insert(cursor, target, rows, width=len(fields))
        elif connection.vendor == "mysql":
            values = ", ".join(["%s"] * len(fields))
            with contextlib.closing(driver_connection.cursor()) as cursor:
                cursor.executemany(f"INSERT INTO {target} VALUES ({values})", rows)
        else:
            raise NotImplementedError(f"no raw driver insert for {connection.vendor}.")
    return len(rows)


def _sqlite_multirow_insert(
    cursor: sqlite3.Cursor, target: str, rows: list[tuple[Any, ...]], *, width: int
) -> None:
    """``rows`` in statements of SQLITE_RAW_ROWS_PER_STATEMENT rows each, one prepared
    statement for all the full ones (executemany), one more for the rest."""
    limit = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    step = max(1, min(SQLITE_RAW_ROWS_PER_STATEMENT, limit // width))
    full = len(rows) - len(rows) % step

    def statement(count: int) -> str:
        row = f"({', '.join(['?'] * width)})"
        return f"INSERT INTO {target} VALUES {', '.join([row] * count)}"

    flat = itertools.chain.from_iterable
    cursor.executemany(
        statement(step), (tuple(flat(rows[i : i + step])) for i in range(0, full, step))
    )
    if full < len(rows):
        cursor.execute(statement(len(rows) - full), tuple(flat(rows[full:])))


def faker_new(size: int, using: str) -> dict[str, Any]:
    fake = Faker()
    fake.seed_instance(0)
    return {"fake": fake}


def user_fields(fake: Faker, i: int) -> dict[str, Any]:
    """A user's fields, Faker called per user; ``.{i}`` keeps usernames unique."""
    return {
        "username": f"{fake.user_name()}.{i}",
        "first_name": fake.first_name(),
        "last_name": fake.last_name(),
        "email": fake.email(),
        "password": "!",
    }


@case("users_bulk_create", group=GROUP, setup=faker_new, size_divisor=10)
def users_bulk_create(size: int, using: str, *, fake: Faker) -> int:
    """Faker per user, User.objects.bulk_create per 1000: no signals, so no profiles."""
    manager = User._default_manager.db_manager(using)
    for start in range(0, size, BATCH_SIZE):
        manager.bulk_create(
            [User(**user_fields(fake, i)) for i in range(start, min(start + BATCH_SIZE, size))]
        )
    return size


def users_pregenerate(size: int, using: str) -> dict[str, Any]:
    fake = faker_new(size, using)["fake"]
    return {"users": [User(**user_fields(fake, i)) for i in range(size)]}


@case("users_bulk_create_pregenerated", group=GROUP, setup=users_pregenerate, size_divisor=10)
def users_bulk_create_pregenerated(size: int, using: str, *, users: list[Any]) -> int:
    """As users_bulk_create, but with the users generated before the clock starts.

    The difference between the two is the cost of Faker; this one is the ORM's alone.
    """
    manager = User._default_manager.db_manager(using)
    for start in range(0, size, BATCH_SIZE):
        manager.bulk_create(users[start : start + BATCH_SIZE])
    return size


class UserFactory(DjangoModelFactory[AbstractBaseUser]):
    class Meta:
        model = User

    class Params:
        handle = FakerDeclaration("user_name")

    username = LazyAttributeSequence(lambda o, n: f"{o.handle}.{n}")
    first_name = FakerDeclaration("first_name")
    last_name = FakerDeclaration("last_name")
    email = FakerDeclaration("email")
    password = "!"


def factory_new(size: int, using: str) -> dict[str, Any]:
    reseed_random(0)
    meta = type("Meta", (), {"model": User, "database": using})
    return {"user_factory": type("UserFactory", (UserFactory,), {"Meta": meta})}


@case("users_factory_boy", group=GROUP, setup=factory_new, size_divisor=10)
def users_factory_boy(size: int, using: str, *, user_factory: type[UserFactory]) -> int:
    """factory_boy create_batch with Faker fields: save() per user, receivers add a profile.

    One transaction per 1000 users.
    """
    for start in range(0, size, BATCH_SIZE):
        with transaction.atomic(using=using):
            user_factory.create_batch(min(BATCH_SIZE, size - start))
    return size


@case("users_save_loop", group=GROUP, setup=faker_new, size_divisor=10)
def users_save_loop(size: int, using: str, *, fake: Faker) -> int:
    """Faker per user, User.objects.create per user: receivers add a profile, queue an e-mail.

    One transaction per 1000 users. The baseline for 'seed_users --via save'.
    """
    manager = User._default_manager.db_manager(using)
    for start in range(0, size, BATCH_SIZE):
        with transaction.atomic(using=using):
            for i in range(start, min(start + BATCH_SIZE, size)):
                manager.create(**user_fields(fake, i))
    return size
