"""The insert-if-missing statement, per backend: the one place that writes, in SQL, the
rows a user has one of (a profile, a welcome-mail record).

Two forms, into a model with a one-to-one ``user``
(:class:`~profiles.models.Profile` unless told otherwise). :func:`insert_missing`
is one set-based ``INSERT ... SELECT`` over a range of users, optionally only
for the users who joined in a :class:`Joined` range: the backfill's and the
sync's. :func:`insert_missing_for_user` is one row, ``INSERT ... VALUES``: the
receivers', one user at a time. In both, the one-to-one constraint plus the
backend's "ignore duplicates" clause make it correct without any lock, even
against a concurrent run or a receiver.

Any user model: pk values are bound through the pk field's own
``get_db_prep_value`` (a UUID is not an integer, nor on SQLite a type the driver
knows), and the pk's order is the database's, never Python's.

How the statement meets concurrent writers (:class:`Strategy`) is the
backfill's business, not part of the contract of
:func:`profiles.services.profiles_create_missing`: only ``profiles.backfill``
asks for anything but :data:`SAFE`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db import DataError, IntegrityError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from profiles.models import Profile
from profiles.sharding import WHOLE_TABLE, Shard


@dataclass(frozen=True)
class Strategy:
    """How one statement meets another writer's profiles and deletes.

    ``conflict_clause=False``: PostgreSQL leaves ``ON CONFLICT DO NOTHING`` out,
    which costs there (the NOT EXISTS skips the usual case); a profile another
    writer made meanwhile then raises IntegrityError instead, and the caller
    reruns the statement with the clause. ``user_locks=False``: MySQL, in a
    transaction at READ COMMITTED, inserts with the foreign-key check off and
    checks the users itself (see :func:`_insert_without_user_locks`), so a batch
    does not share-lock every one of its users until it commits.
    """

    conflict_clause: bool = True
    user_locks: bool = True


SAFE = Strategy()


@dataclass(frozen=True)
class Joined:
    """Users by when they joined: the user model's date-time field ``field``, at or after
    ``since`` and before ``until`` (either may be None: no bound on that side).

    ``null_is_before``: a user whose field is NULL counts as joined before any
    date, so it is in a range with no ``since`` (the users before a cutoff)
    and in no other. Build one with :meth:`at_or_after`, :meth:`before` or
    :meth:`between`.
    """

    field: str
    since: datetime | None = None
    until: datetime | None = None
    null_is_before: bool = True

    @classmethod
    def at_or_after(cls, field: str, since: datetime) -> Joined:
        return cls(field, since=since)

    @classmethod
    def before(cls, field: str, until: datetime) -> Joined:
        """Before ``until``, or never said (NULL): the users a cutoff leaves out."""
        return cls(field, until=until)

    @classmethod
    def between(cls, field: str, since: datetime, until: datetime) -> Joined:
        """``since <= joined < until``; a NULL is in no range with a start."""
        return cls(field, since=since, until=until)

    def where(self, connection: BaseDatabaseWrapper, alias: str) -> tuple[str, list[Any]]:
        """The condition on ``alias`` (the user table), with its parameters prepared."""
        user_model = get_user_model()
        field = _field(user_model, self.field)
        column = f"{alias}.{connection.ops.quote_name(_column(user_model, self.field))}"
        conditions, params = [], []
        if self.since is not None:
            conditions.append(f"{column} >= %s")
            params.append(field.get_db_prep_value(self.since, connection))
        if self.until is not None:
            before = f"{column} < %s"
            if self.since is None and self.null_is_before:
                before = f"({before} OR {column} IS NULL)"
            conditions.append(before)
            params.append(field.get_db_prep_value(self.until, connection))
        if not conditions:
            return "1 = 1", []
        return " AND ".join(conditions), params


@dataclass(frozen=True)
class _PkRange:
    """Users with ``lower < pk <= upper`` (``<=`` when ``lower_inclusive``; no lower
    bound when ``lower`` is None), the bounds prepared for one connection."""

    lower: Any
    lower_inclusive: bool
    upper: Any

    def where(self, column: str) -> tuple[str, list[Any]]:
        if self.lower is None:
            return f"{column} <= %s", [self.upper]
        op = ">=" if self.lower_inclusive else ">"
        return f"{column} {op} %s AND {column} <= %s", [self.lower, self.upper]


def insert_missing(
    connection: BaseDatabaseWrapper,
    *,
    values: Mapping[str, object],
    last_pk: Any,
    first_pk: Any = None,
    after_pk: Any = None,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    strategy: Strategy = SAFE,
    model: type[Model] = Profile,
    joined: Joined | None = None,
) -> int:
    """Insert the missing rows of ``model`` (fields ``values``, besides ``user``; a
    profile unless told otherwise) of the users ``first_pk <= pk <= last_pk``, or
    ``after_pk < pk <= last_pk`` (neither: every pk up to ``last_pk``), of ``shard``,
    who joined in ``joined`` (None: whenever), at most ``limit``; the rows inserted."""
    users = _pk_range(connection, first_pk=first_pk, after_pk=after_pk, last_pk=last_pk)
    sql, params = _statement(
        connection,
        users,
        values=values,
        shard=shard,
        limit=limit,
        strategy=strategy,
        model=model,
        joined=joined,
    )
    if not strategy.user_locks and _can_leave_users_unlocked(connection):
        return _insert_without_user_locks(connection, sql, params, users, model=model)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(int(cursor.rowcount), 0)


def insert_missing_for_user(
    connection: BaseDatabaseWrapper,
    *,
    user_pk: Any,
    values: Mapping[str, object],
    model: type[Model] = Profile,
) -> bool:
    """Insert the row of ``model`` (fields ``values``, besides ``user``) of the user
    ``user_pk`` unless it has one; True when this inserted it.

    One ``INSERT ... VALUES``: a receiver's statement, for the user just saved,
    where the range statement of :func:`insert_missing` costs PostgreSQL a plan
    of a join and an anti-join for one row. A row another writer inserted first
    (committed, or committed while this waits on it) is left alone, and False
    returned. A user that does not exist is an IntegrityError from the foreign
    key, as for an ORM insert: at once in autocommit and on MySQL, at commit where
    the check is deferred (PostgreSQL, SQLite). A conflict spends a sequence
    value of ``model``'s pk; for a new user it is rare.
    """
    qn = connection.ops.quote_name
    *_, table, _, user_column = _quoted_names(connection, model)
    values = {**_defaults(model, leaving_out=values), **values}
    columns = ", ".join([user_column, *(qn(_column(model, name)) for name in values)])
    params = [
        _field(model, "user").get_db_prep_save(user_pk, connection),
        *(
            _field(model, name).get_db_prep_save(value, connection)
            for name, value in values.items()
        ),
    ]
    row = f"{table} ({columns}) VALUES ({', '.join(['%s'] * len(params))})"
    if connection.vendor == "mysql":
        return _insert_ignore(connection, f"INSERT IGNORE INTO {row}", params)
    with connection.cursor() as cursor:
        # PostgreSQL and SQLite (3.24+) both know ON CONFLICT; it ignores only the
        # unique constraint named, never the foreign key.
        cursor.execute(f"INSERT INTO {row} ON CONFLICT ({user_column}) DO NOTHING", params)
        return bool(cursor.rowcount == 1)


# MySQL's codes for a duplicate key (what INSERT IGNORE is there to ignore) and for
# the failures it also turns into warnings that are a broken constraint, not bad data.
_DUPLICATE_KEY = 1062
_CONSTRAINT_FAILURES = frozenset({1048, 1216, 1452, 3819, 4025})


def _insert_ignore(connection: BaseDatabaseWrapper, sql: str, params: list[Any]) -> bool:
    """MySQL's ``INSERT IGNORE``, ignoring the duplicate key only.

    IGNORE also lets a missing user (the foreign key) or a value too long for its
    column through, as a warning (and the value truncated, the row inserted):
    those are raised as the IntegrityError or DataError they would have been. The
    warning count comes with the statement's reply; only a statement with
    warnings costs a ``SHOW WARNINGS``. The transaction makes a truncated row go
    with the error, in autocommit too.
    """
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted: bool = cursor.rowcount == 1
        if not connection.connection.warning_count():
            return inserted
        cursor.execute("SHOW WARNINGS")
        for level, code, message in cursor.fetchall():
            if level == "Note" or code == _DUPLICATE_KEY:
                continue
            # Raised inside the transaction, so that it rolls back.
            error = IntegrityError if code in _CONSTRAINT_FAILURES else DataError
            raise error(code, message)
        return inserted


def insert_missing_sql(
    connection: BaseDatabaseWrapper,
    *,
    values: Mapping[str, object],
    last_pk: Any,
    first_pk: Any = None,
    after_pk: Any = None,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    strategy: Strategy = SAFE,
    model: type[Model] = Profile,
    joined: Joined | None = None,
) -> tuple[str, list[Any]]:
    """The statement :func:`insert_missing` runs, with its parameters (to EXPLAIN it)."""
    users = _pk_range(connection, first_pk=first_pk, after_pk=after_pk, last_pk=last_pk)
    return _statement(
        connection,
        users,
        values=values,
        shard=shard,
        limit=limit,
        strategy=strategy,
        model=model,
        joined=joined,
    )


def _pk_range(
    connection: BaseDatabaseWrapper, *, first_pk: Any, after_pk: Any, last_pk: Any
) -> _PkRange:
    if first_pk is not None and after_pk is not None:
        raise TypeError("give first_pk or after_pk, not both")
    pk = get_user_model()._meta.pk
    assert pk is not None
    lower = first_pk if first_pk is not None else after_pk
    return _PkRange(
        lower=None if lower is None else pk.get_db_prep_value(lower, connection),
        lower_inclusive=first_pk is not None,
        upper=pk.get_db_prep_value(last_pk, connection),
    )


def _statement(
    connection: BaseDatabaseWrapper,
    users: _PkRange,
    *,
    values: Mapping[str, object],
    shard: Shard,
    limit: int | None,
    strategy: Strategy,
    model: type[Model],
    joined: Joined | None,
) -> tuple[str, list[Any]]:
    qn = connection.ops.quote_name
    user_table, user_pk, profile_table, _, user_fk = _quoted_names(connection, model)
    values = {**_defaults(model, leaving_out=values), **values}
    columns = [qn(_column(model, name)) for name in values]
    prepared = [
        _field(model, name).get_db_prep_save(value, connection) for name, value in values.items()
    ]
    in_batch, in_batch_params = users.where(f"u.{user_pk}")
    params: list[Any] = [*prepared, *in_batch_params]
    select = (
        f"SELECT u.{user_pk}, {', '.join(['%s'] * len(prepared))} FROM {user_table} u"
        f" WHERE {in_batch}"
    )
    if connection.vendor != "sqlite" or limit is not None:
        # Skip users that have a profile before inserting: PostgreSQL and MySQL
        # would otherwise spend a sequence value on every conflicting row, and
        # LIMIT must count only new profiles. SQLite's ON CONFLICT alone is cheaper.
        # The range repeated on p: PostgreSQL does not carry it across the join by
        # itself and would scan every profile for each batch (quadratic in the table).
        profiles_in_batch, profiles_in_batch_params = users.where(f"p.{user_fk}")
        select += (
            f" AND NOT EXISTS (SELECT 1 FROM {profile_table} p WHERE p.{user_fk} = u.{user_pk}"
            f" AND {profiles_in_batch})"
        )
        params += profiles_in_batch_params
    if joined is not None:
        when, when_params = joined.where(connection, "u")
        select += f" AND {when}"
        params += when_params
    if shard.count > 1:
        select += f" AND u.{user_pk} %% %s = %s"
        params += [shard.count, shard.number - 1]
    if limit is not None:
        select += f" ORDER BY u.{user_pk} LIMIT %s"
        params.append(limit)
    target = f"{profile_table} ({user_fk}, {', '.join(columns)})"
    if connection.vendor == "mysql":
        sql = f"INSERT IGNORE INTO {target} {select}"
    elif not strategy.conflict_clause and connection.vendor == "postgresql":
        sql = f"INSERT INTO {target} {select}"  # NOT EXISTS above skips the usual case
    else:
        # PostgreSQL and SQLite (3.24+) both know ON CONFLICT.
        sql = f"INSERT INTO {target} {select} ON CONFLICT ({user_fk}) DO NOTHING"
    return sql, params


def _can_leave_users_unlocked(connection: BaseDatabaseWrapper) -> bool:
    """InnoDB's foreign-key check share-locks each referenced user row until commit,
    so an UPDATE of any user in a batch would wait for the whole batch. Inside a
    transaction at READ COMMITTED (Django's default on MySQL) we can do without."""
    return (
        connection.vendor == "mysql"
        and connection.in_atomic_block
        and getattr(connection, "isolation_level", None) == "read committed"
    )


def _insert_without_user_locks(
    connection: BaseDatabaseWrapper,
    sql: str,
    params: list[Any],
    users: _PkRange,
    *,
    model: type[Model],
) -> int:
    """Insert with the foreign-key check off, then check the users ourselves, before commit.

    The insert may race a DELETE of one of its users. A deleter that comes after
    it finds our uncommitted profile in its own foreign-key check and fails (or,
    between our insert and our locking read, deadlocks with us: InnoDB rolls one
    of the two back, and a batch is retried), as it would with the check on.
    Writes to our users not yet committed (such a DELETE, or an UPDATE in flight)
    are waited out by a locking read that no row matches, so READ COMMITTED
    lets go of each row lock at once; a fresh read then finds the profiles whose
    user is gone, and they are deleted again. Nothing is left locked for
    ordinary traffic.
    """
    user_table, user_pk, profile_table, profile_pk, user_fk = _quoted_names(connection, model)
    in_batch, in_batch_params = users.where(f"u.{user_pk}")
    profiles_in_batch, profiles_in_batch_params = users.where(f"p.{user_fk}")
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION foreign_key_checks = 0")
        try:
            cursor.execute(sql, params)
            created = max(int(cursor.rowcount), 0)
        finally:
            cursor.execute("SET SESSION foreign_key_checks = 1")
        cursor.execute(
            # LENGTH(pk) < 0 is true of no row, for any pk type, and cannot overflow
            # (pk + 1 did, at a BIGINT's largest value). The optimizer cannot prove
            # it false (it folds "pk <> pk" or "pk IS NULL" into Impossible WHERE and
            # would read, and wait for, no row), nor use it instead of the range.
            f"SELECT u.{user_pk} FROM {user_table} u WHERE {in_batch}"
            f" AND LENGTH(u.{user_pk}) < 0 LOCK IN SHARE MODE",
            in_batch_params,
        )
        cursor.execute(
            f"SELECT p.{profile_pk} FROM {profile_table} p"
            f" LEFT JOIN {user_table} u ON u.{user_pk} = p.{user_fk}"
            f" WHERE {profiles_in_batch} AND u.{user_pk} IS NULL",
            profiles_in_batch_params,
        )
        orphans = [pk for (pk,) in cursor.fetchall()]
        if orphans:
            placeholders = ", ".join(["%s"] * len(orphans))
            cursor.execute(
                f"DELETE FROM {profile_table} WHERE {profile_pk} IN ({placeholders})", orphans
            )
    return created - len(orphans)


@contextmanager
def in_pk_order(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Have PostgreSQL walk the pk's index for ``ORDER BY pk LIMIT n OFFSET m``.

    On a table it has no statistics of yet (just bulk-loaded: the usual case
    for a backfill), PostgreSQL takes the range for a few hundred rows and
    plans a scan of all of it and a sort: ten times as slow as walking the
    index, which yields that order as it is. Told not to sort, it walks the
    index. ``SET LOCAL``, so it holds through a transaction pooler and ends
    with the lookup.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_sort'), set_config('enable_sort', 'off', true)"
        )
        [previous, _] = cursor.fetchone()
        yield
        # Inside a caller's transaction, SET LOCAL would outlast the lookup. (On an
        # error, the savepoint's rollback undoes it.)
        cursor.execute("SELECT set_config('enable_sort', %s, true)", [previous])


def _quoted_names(
    connection: BaseDatabaseWrapper, model: type[Model]
) -> tuple[str, str, str, str, str]:
    """User table, user pk, ``model``'s table, its pk, its user column: quoted.

    (Named for profiles, the first such model, in the statements: ``p``.)"""
    qn = connection.ops.quote_name
    user_model = get_user_model()
    user_pk, profile_pk = user_model._meta.pk, model._meta.pk
    assert user_pk is not None and profile_pk is not None
    return (
        qn(user_model._meta.db_table),
        qn(_column(user_model, user_pk.name)),
        qn(model._meta.db_table),
        qn(_column(model, profile_pk.name)),
        qn(_column(model, "user")),
    )


def _defaults(model: type[Model], *, leaving_out: Mapping[str, object]) -> dict[str, object]:
    """What the ORM would write for each field of ``model`` that ``leaving_out`` does not
    name (besides its pk and ``user``): its default, "" for a text field without one,
    else NULL. The statement writes every column, as an ORM insert does."""
    return {
        field.name: field.get_default()
        for field in model._meta.concrete_fields
        if field.name not in leaving_out and not field.primary_key and field.name != "user"
    }


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    return cast("Field[Any, Any]", model._meta.get_field(name))


def _column(model: type[Model], name: str) -> str:
    return cast(str, _field(model, name).column)
