"""One batch of seeded users: inserted, recorded as the run's, their new records counted.

Each function runs inside the batch's transaction, so the users, their
SeededUser rows and their welcome-mail records commit or roll back together.
``--via save`` counts the batch's profiles and welcome-mail records before the
commit: exactly the receivers' work, since no other transaction (a concurrent
backfill or ``welcome_mails sync``) can see these users yet. ``--via bulk``
runs no receiver, so there is nothing to count, except the suppressed
welcome-mail records it writes itself, set-based, when the welcome receiver is
muted (``seed_users --mute``): the users were asked to get no mail, and
``welcome_mails sync`` would otherwise make their records pending.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count
from django.db.models.fields import AutoFieldMixin

from profiles.models import Profile, WelcomeMail
from profiles.welcome.records import suppressed_values
from seeding.generator import FakeUser
from seeding.models import SeededUser
from seeding.userfields import BulkLayout, Row, UserColumns, pg_copy_type
from signalaudit import Write, report_write

if TYPE_CHECKING:
    from seeding.userfields import AnyField

# ~1 MB of user rows per statement; MariaDB's max_allowed_packet is 16 MB. Also
# the longest IN list written, well inside every backend's parameter limit.
_MYSQL_ROWS_PER_STATEMENT = 5000
# SQLite: rows per multi-row INSERT, within the build's parameter limit. From 100
# to 5000 they measured the same; more only makes longer statements to compile.
_SQLITE_ROWS = 1000


@dataclass(frozen=True)
class BatchCounts:
    """The records a batch's users got with them: profiles, and welcome mails per state."""

    profiles: int = 0
    welcome_pending: int = 0
    welcome_suppressed: int = 0

    def __add__(self, other: BatchCounts) -> BatchCounts:
        return BatchCounts(
            profiles=self.profiles + other.profiles,
            welcome_pending=self.welcome_pending + other.welcome_pending,
            welcome_suppressed=self.welcome_suppressed + other.welcome_suppressed,
        )


def save_batch(
    batch: Sequence[FakeUser], *, columns: UserColumns, run_pk: int, using: str
) -> BatchCounts:
    """Each user through save(), so every receiver runs; the records they made, counted."""
    users = [columns.new_user(user) for user in batch]
    for user in users:
        # force_insert: where the key is the username, an existing row fails the
        # insert instead of being overwritten by save()'s UPDATE.
        user.save(using=using, force_insert=True)
    pks = [user.pk for user in users]
    SeededUser.objects.using(using).bulk_create(
        [SeededUser(user_id=pk, run_id=run_pk) for pk in pks]
    )
    connection = connections[using]
    profiles = Profile.objects.using(using)
    mails = WelcomeMail.objects.using(using).order_by()
    profile_count = 0
    states: dict[str, int] = {}
    for chunk in _chunks(pks, connection, spare=0):
        profile_count += profiles.filter(user_id__in=chunk).count()
        for status, count in (
            mails.filter(user_id__in=chunk)
            .values("status")
            .annotate(count=Count("pk"))
            .values_list("status", "count")
        ):
            states[status] = states.get(status, 0) + count
    return BatchCounts(
        profiles=profile_count,
        welcome_pending=states.get(WelcomeMail.Status.PENDING, 0),
        welcome_suppressed=states.get(WelcomeMail.Status.SUPPRESSED, 0),
    )


def bulk_insert_batch(
    batch: Sequence[FakeUser],
    *,
    columns: UserColumns,
    layout: BulkLayout,
    run_pk: int,
    using: str,
    welcome_suppressed: str | None = None,
) -> BatchCounts:
    """The batch in one statement per backend's fastest path: no save(), no signal.

    ``welcome_suppressed``: the reason of the suppressed welcome-mail records to
    give the batch's users (the welcome receiver is muted); None: no records.
    """
    connection = connections[using]
    meta = columns.model._meta
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    column_list = ", ".join(qn(cast(str, f.column)) for f in layout.fields)
    rows = layout.rows(batch)
    span: _RowidSpan | None = None
    # wrap_database_errors: the raw cursors' errors become Django's, like the rest.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if connection.vendor == "postgresql":
            _copy_binary(cursor.cursor, rows, table, column_list, layout, connection)
            operation: str | None = "COPY"
        elif connection.vendor == "sqlite":
            span = _insert_values(connection, rows, table, column_list, len(layout.fields))
            operation = "raw SQL (multi-row INSERT)"
        else:
            placeholders = ", ".join(["%s"] * len(layout.fields))
            sql = f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})"
            # MySQLdb sends one multi-row INSERT per call: keep each well under
            # max_allowed_packet whatever --batch-size is (still one transaction).
            step = _MYSQL_ROWS_PER_STATEMENT if connection.vendor == "mysql" else len(rows)
            for start in range(0, len(rows), step):
                cursor.executemany(sql, rows[start : start + step])
            operation = None  # Django's cursor, so the detector saw it
        if operation is not None:
            # Django's cursor never saw the rows: the detector is told (one check when off).
            report_write(
                model=columns.model,
                write=Write.INSERT,
                rows=len(rows),
                using=using,
                operation=operation,
            )
        for_each_user = _for_each_user(
            cursor, batch, rows, span, columns=columns, layout=layout, connection=connection
        )
        qn_seeded = qn(SeededUser._meta.db_table)
        for_each_user(
            f"INSERT INTO {qn_seeded} "
            f"({qn(_column(SeededUser, 'user'))}, {qn(_column(SeededUser, 'run'))})",
            [run_pk],
        )
        suppressed = 0
        if welcome_suppressed is not None:
            suppressed = for_each_user(*_welcome_insert(welcome_suppressed, connection))
    # No receiver runs for a bulk insert, and no other transaction can see these
    # users before the commit: none of them can have a profile to credit.
    return BatchCounts(welcome_suppressed=suppressed)


def _copy_binary(
    raw: Any,
    rows: Sequence[Row],
    table: str,
    column_list: str,
    layout: BulkLayout,
    connection: BaseDatabaseWrapper,
) -> None:
    """Binary COPY: no text parsing on either side, the fastest path psycopg has.

    The queued writer sends from a thread, so the server inserts while Python
    still encodes rows. Binary COPY casts nothing: each column's own type.
    """
    from psycopg.copy import QueuedLibpqWriter  # psycopg is the postgres extra

    binary = f"COPY {table} ({column_list}) FROM STDIN (FORMAT BINARY)"
    with raw.copy(binary, writer=QueuedLibpqWriter(raw)) as copy:
        copy.set_types([pg_copy_type(f, connection) for f in layout.fields])
        for row in rows:
            copy.write_row(row)


def _insert_values(
    connection: BaseDatabaseWrapper, rows: Sequence[Row], table: str, column_list: str, width: int
) -> _RowidSpan:
    """Multi-row ``INSERT ... VALUES (...), (...)`` statements on sqlite3's own connection;
    the rowids from the first statement's ``lastrowid`` less its rows to the last one's.

    Measured 1.3x one row per statement. sqlite3's own connection, in the batch's
    transaction: Django's cursor rewrites every statement's placeholders with a
    regular expression (and logs it with its values under DEBUG), which costs
    more than the rows' insert when a statement holds a thousand rows.
    """
    per_statement = max(1, min(_sqlite_parameter_limit(connection) // width, _SQLITE_ROWS))
    row_values = "(" + ", ".join(["?"] * width) + ")"
    into = f"INSERT INTO {table} ({column_list}) VALUES "
    full = into + ", ".join([row_values] * per_statement)
    raw = connection.connection
    after = last = 0
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = full if len(chunk) == per_statement else into + ", ".join([row_values] * len(chunk))
        statement = raw.execute(sql, [value for row in chunk for value in row])
        # rowcount: this statement's rows (a trigger's are not counted); lastrowid: its last row's.
        last = statement.lastrowid
        if start == 0:
            after = last - statement.rowcount
    return _RowidSpan(after=after, last=last)


@dataclass(frozen=True)
class _RowidSpan:
    """Rowids after ``after`` up to ``last``: the batch's, when :func:`_span_is_the_batch`."""

    after: int
    last: int


def _sqlite_parameter_limit(connection: BaseDatabaseWrapper) -> int:
    """The build's limit on a statement's parameters (Python 3.11+ can ask), else Django's 999."""
    getlimit = getattr(connection.connection, "getlimit", None)
    if getlimit is not None:
        return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return int(connection.features.max_query_params or 999)


def _welcome_insert(reason: str, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
    """``INSERT INTO`` the welcome-mail table with its user column first, and the
    values of a suppressed record (:func:`~profiles.welcome.records.suppressed_values`)
    for every other column without a null (sent_at stays NULL), as the database stores them."""
    qn = connection.ops.quote_name
    meta = WelcomeMail._meta
    values = {"attempts": 0, "message_id": "", **suppressed_values(reason)}
    fields = [cast("AnyField", meta.get_field(name)) for name in values]
    names = ", ".join(qn(cast(str, f.column)) for f in fields)
    into = f"INSERT INTO {qn(meta.db_table)} ({qn(_column(WelcomeMail, 'user'))}, {names})"
    return into, [f.get_db_prep_save(values[f.name], connection) for f in fields]


# Inserts one row per user of the batch into a table: (an INSERT INTO with the user
# column first, the other columns' values) -> the rows inserted.
_ForEachUser = Callable[[str, Sequence[Any]], int]


def _for_each_user(
    cursor: Any,
    batch: Sequence[FakeUser],
    rows: Sequence[Row],
    span: _RowidSpan | None,
    *,
    columns: UserColumns,
    layout: BulkLayout,
    connection: BaseDatabaseWrapper,
) -> _ForEachUser:
    """How to give each user of the batch a row: from its key where SQLite can know it,
    else by its username.

    On SQLite the keys are known either from the rows (the insert wrote a UUID
    or string primary key itself) or from the auto keys' span the insert
    reported (:func:`_span_is_the_batch`). 1.4x faster per batch than finding the
    users by username, which stays the way on the other backends (PostgreSQL's
    COPY and MySQLdb's executemany give no keys back). ``INSERT ... RETURNING``
    measured no faster than the lookup: sqlite3 fetches the returned rows one by one.
    """
    by_username = functools.partial(
        _insert_by_username, cursor, batch, columns=columns, connection=connection
    )
    if connection.vendor != "sqlite":
        return by_username
    meta = columns.model._meta
    pk = cast("AnyField", meta.pk)
    if pk in layout.fields and connection.features.supports_json_field:
        keys = [row[layout.fields.index(pk)] for row in rows]
        # Prepared by one field, so of one type: JSON carries a str or an int as it is.
        if not keys or type(keys[0]) in (str, int):
            return functools.partial(_insert_for_keys, cursor, keys)
    qn = connection.ops.quote_name
    users, key = qn(meta.db_table), qn(cast(str, pk.column))
    if (
        span is not None
        and isinstance(pk, AutoFieldMixin)
        and _span_is_the_batch(cursor, span, len(rows), meta.db_table, users, key, connection)
    ):
        return functools.partial(_insert_for_span, cursor, span, users, key)
    return by_username


def _span_is_the_batch(
    cursor: Any,
    span: _RowidSpan,
    size: int,
    table: str,
    users: str,
    key: str,
    connection: BaseDatabaseWrapper,
) -> bool:
    """Whether the users with an auto key in ``span`` are exactly the batch's ``size`` users.

    They are when the table has no trigger and the span holds ``size`` users:
    from its first insert to its commit the batch's transaction holds SQLite's
    one write lock, and without a trigger only its own statements insert users;
    a new auto key is larger than every key the table had (AUTOINCREMENT, as
    Django declares auto keys on SQLite: than any it ever had), so the earlier
    users' keys are below the batch's first, which is at most ``span.after`` + 1
    (the first statement's keys are ``rowcount`` different numbers up to its
    ``lastrowid``). So the span holds only the batch's users; holding as many,
    all of them. A trigger could insert users of its own within the span.
    """
    if not connection.in_atomic_block:  # each statement its own transaction: others between
        return False
    cursor.execute(
        f"SELECT (SELECT count(*) FROM {users} WHERE {key} > %s AND {key} <= %s), "
        "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s "
        "COLLATE NOCASE)",
        [span.after, span.last, table],
    )
    in_span, triggered = cursor.fetchone()
    return bool(in_span == size and not triggered)


def _insert_for_keys(cursor: Any, keys: Sequence[Any], into: str, values: Sequence[Any]) -> int:
    """One row per key, the keys in one JSON parameter (never near the parameter limit)."""
    rest = "".join(", %s" for _ in values)
    cursor.execute(f"{into} SELECT value{rest} FROM json_each(%s)", [*values, json.dumps(keys)])
    return int(cursor.rowcount)


def _insert_for_span(
    cursor: Any, span: _RowidSpan, users: str, pk: str, into: str, values: Sequence[Any]
) -> int:
    """One row per user whose key is in ``span``: a range of the table's own rowid."""
    rest = "".join(", %s" for _ in values)
    cursor.execute(
        f"{into} SELECT {pk}{rest} FROM {users} WHERE {pk} > %s AND {pk} <= %s",
        [*values, span.after, span.last],
    )
    return int(cursor.rowcount)


def _insert_by_username(
    cursor: Any,
    batch: Sequence[FakeUser],
    into: str,
    values: Sequence[Any],
    *,
    columns: UserColumns,
    connection: BaseDatabaseWrapper,
) -> int:
    """``into`` (an ``INSERT INTO t (user, ...)``) one row per user of the batch: its
    pk, then ``values``; the rows inserted. For keys a bulk insert does not give back.

    Set-based, inside the database: the batch's exact usernames, each found
    through the username field's unique index. On MariaDB/MySQL that index's
    collation ignores case, so "Seed1-x" would match "seed1-x"; it still finds
    exactly the rows just inserted, because the same unique index would have
    rejected an insert whose username equalled an existing one's in that
    collation.
    """
    qn = connection.ops.quote_name
    meta = columns.model._meta
    position = columns.generated[0][1]
    names = [user[position] for user in batch]
    users, username = qn(meta.db_table), qn(cast(str, columns.username.column))
    pk = qn(cast(str, meta.pk.column))
    rest = "".join(", %s" for _ in values)
    if connection.vendor == "postgresql":
        # One array parameter. The scalar subquery is one index probe per name:
        # as a join, the planner would trade it for a scan of the growing table.
        cursor.execute(
            f"{into} SELECT (SELECT {pk} FROM {users} WHERE {username} = n.name){rest} "
            "FROM unnest(%s::text[]) AS n(name)",
            [*values, names],
        )
        return int(cursor.rowcount)
    if connection.vendor == "sqlite" and connection.features.supports_json_field:
        # One JSON parameter: SQLite's limit on parameters never applies.
        cursor.execute(
            f"{into} SELECT {pk}{rest} FROM {users} "
            f"WHERE {username} IN (SELECT value FROM json_each(%s))",
            [*values, json.dumps(names)],
        )
        return int(cursor.rowcount)
    inserted = 0
    for chunk in _chunks(names, connection, spare=len(values)):
        placeholders = ", ".join(["%s"] * len(chunk))
        cursor.execute(
            f"{into} SELECT {pk}{rest} FROM {users} WHERE {username} IN ({placeholders})",
            [*values, *chunk],
        )
        inserted += int(cursor.rowcount)
    return inserted


def _column(model: Any, name: str) -> str:
    return cast(str, cast("AnyField", model._meta.get_field(name)).column)


def _chunks(
    values: Sequence[Any], connection: BaseDatabaseWrapper, *, spare: int
) -> Iterator[Sequence[Any]]:
    """Slices small enough for the backend's parameter limit, ``spare`` parameters left over."""
    limit = connection.features.max_query_params or _MYSQL_ROWS_PER_STATEMENT
    step = min(limit, _MYSQL_ROWS_PER_STATEMENT) - spare
    for start in range(0, len(values), step):
        yield values[start : start + step]
