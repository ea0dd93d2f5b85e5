"""A bulk seed on two streams (PostgreSQL): the same users as on one, batches committed in
order, a stop or an error rolling back what is in flight, and nothing left behind.

Transactional tests: each stream commits on a connection of its own, which a test's
wrapping transaction could not hold. The CommitOrder tests need no database.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.db.backends.signals import connection_created
from django.utils import timezone

import seeding.writer
from dbtools.stopping import StopRequest
from profiles.models import WelcomeMail
from profiles.receivers import WELCOME_MAIL_RECEIVER
from seeding.generator import FakeUser, FakeUsers
from seeding.models import SeededUser, SeedRun
from seeding.streams import THREAD_NAME_PREFIX, CommitOrder, TurnLost
from seeding.userfields import UserColumns, user_columns
from seeding.writer import BatchWriter, default_streams
from signalaudit import audit_signal_skips, signal_skips_expected
from switches.muting import muted
from tests.helpers.audit import bulk_insert_site
from tests.helpers.commands import run_command
from tests.helpers.seeding import required_field_values, seed, username_values
from tests.helpers.users import user_model, users

postgresql = pytest.mark.applies_if(
    connection.vendor == "postgresql", reason="two streams: PostgreSQL only"
)
SEED = 7


@pytest.fixture(name="streams")
def streams_fixture(monkeypatch):
    """Set how many streams a run gets by default (what seed_users --streams will pass)."""

    def use(count: int) -> None:
        monkeypatch.setattr(seeding.writer, "default_streams", lambda **kwargs: count)

    return use


def columns() -> UserColumns:
    return user_columns(password="!", joined=timezone.now(), field_values=required_field_values())


def generated(count: int, *, seed: int = SEED) -> list[FakeUser]:
    """The first ``count`` users of seed run 1."""
    return FakeUsers(seed=seed, run_number=1, locales=["en_US"]).take(count)


def generated_rows(count: int) -> set[tuple[str, ...]]:
    """The first ``count`` users of the run, as the user model's generated fields hold them."""
    return {tuple(user[index] for _, index in columns().generated) for user in generated(count)}


def stored_rows() -> set[tuple[str, ...]]:
    return set(users().values_list(*(field.name for field, _ in columns().generated)))


def plant_user_named_as(user: FakeUser) -> Any:
    """A user already holding ``user``'s username: its batch's insert fails."""
    model = user_model()
    field, index = columns().generated[0]
    values = {**required_field_values(), field.name: user[index]}
    return model._default_manager.create(**values)


def sequence_numbers() -> list[int]:
    """The n of every stored "seed<run>-<n>...." user, sorted: 1..N when they are a prefix."""
    return sorted(int(name.split("-", 1)[1].split(".", 1)[0]) for name in username_values())


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)]


def stop_after(batches: int, stop: StopRequest):
    """An on_batch that asks for a stop once ``batches`` batches have committed."""
    seen = []

    def on_batch(done: int, requested: int) -> None:
        seen.append(done)
        if len(seen) == batches:
            stop.request(signal.SIGTERM)

    return on_batch


# -- the commit order, alone --


def test_a_batch_waits_for_the_one_before_it_to_commit():
    order = CommitOrder()
    passed = threading.Event()

    def second() -> None:
        order.wait_turn(1)
        passed.set()

    thread = threading.Thread(target=second)
    thread.start()
    order.wait_turn(0)  # batch 0's turn at once
    assert not passed.wait(0.05)  # bounded: only shows it has not passed yet
    order.committed(0)
    thread.join(5)
    assert passed.is_set()


def test_a_lost_batch_loses_every_later_turn_but_not_the_earlier_ones():
    order = CommitOrder()
    order.lose(2)
    order.wait_turn(0)
    order.committed(0)
    order.wait_turn(1)
    with pytest.raises(TurnLost):
        order.wait_turn(2)
    with pytest.raises(TurnLost):
        order.wait_turn(5)


# -- the same users --


@pytest.mark.parametrize(
    ("count_of_streams", "batch_size"), [(1, 1000), (2, 7), (2, 100), (3, 64), (2, 1000)]
)
@pytest.mark.django_db(transaction=True)
def test_the_same_users_whatever_the_streams_and_the_batch_size(
    streams, count_of_streams, batch_size
):
    """All backends: elsewhere than on PostgreSQL a run has one stream whatever it asks."""
    streams(count_of_streams)
    result = seed(450, batch_size=batch_size)
    assert (result.created, users().count(), SeededUser.objects.count()) == (450, 450, 450)
    assert stored_rows() == generated_rows(450)


@pytest.mark.django_db
def test_two_streams_by_default_for_a_bulk_run_on_postgresql_and_one_elsewhere():
    expected = 2 if connection.vendor == "postgresql" else 1
    assert default_streams(via="bulk", using="default") == expected
    assert default_streams(via="save", using="default") == 1


@pytest.mark.django_db
def test_inside_a_transaction_of_the_callers_a_run_has_one_stream():
    """Other connections could neither see the caller's rows nor roll back with it."""
    run = SeedRun.objects.create(number=1, via="bulk", seed=1, requested=10, locales="en_US")
    writer = BatchWriter(
        run, via="bulk", columns=columns(), using="default", stop=StopRequest(), streams=2
    )
    assert writer.streams == 1


# -- a stop, and a resume --


@pytest.mark.django_db(transaction=True)
@postgresql
def test_a_stop_rolls_back_the_batches_in_flight_and_a_rerun_finishes_the_same_users(streams):
    streams(2)
    stop = StopRequest()
    stopped = seed(1000, batch_size=50, stop=stop, on_batch=stop_after(3, stop))
    committed = users().count()
    # Batch 4 was in flight when the stop came: it may have passed its turn already.
    assert committed in (150, 200)
    assert (stopped.created, stopped.stopped, stopped.stop_signal) == (
        committed,
        "signal",
        signal.SIGTERM,
    )
    assert SeededUser.objects.count() == committed
    assert sequence_numbers() == list(range(1, committed + 1))  # a prefix
    assert stream_threads() == []

    resumed = seed(1000, batch_size=50)
    assert (resumed.run_number, resumed.resumed_after, resumed.created) == (
        stopped.run_number,
        committed,
        1000 - committed,
    )
    assert stored_rows() == generated_rows(1000)


# -- an error on a stream --


@pytest.mark.django_db(transaction=True)
@postgresql
def test_an_error_in_a_later_batch_is_raised_once_with_the_batches_before_it_committed(
    streams,
):
    streams(2)
    planted = []

    def plant(done: int, requested: int) -> None:
        # Once the first batch is in, and before the sixth is generated, another process
        # takes the name of the sixth batch's first user (batch 5, on the second stream).
        if not planted:
            planted.append(plant_user_named_as(generated(501)[-1]))

    with pytest.raises(IntegrityError):
        seed(1000, batch_size=100, on_batch=plant)
    seeded = users().exclude(pk=planted[0].pk)
    assert seeded.count() == SeededUser.objects.count() == 500
    assert sequence_numbers()[:500] == list(range(1, 501))
    assert stream_threads() == []
    assert SeedRun.objects.get().finished_at is None


@pytest.fixture(name="refused_name")
def refused_name_fixture():
    """A trigger that refuses to insert the 301st user of seed run 1 as a duplicate key,
    as the server would if another process had taken the name; dropped afterwards."""
    model = user_model()
    field, index = columns().generated[0]
    qn = connection.ops.quote_name
    table, column = qn(model._meta.db_table), qn(field.column)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION h2_refuse_name() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.{column} = %s THEN RAISE unique_violation USING MESSAGE = "
            "'duplicate key value violates unique constraint (planted)'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            [generated(301)[-1][index]],
        )
        cursor.execute(
            f"CREATE TRIGGER h2_refuse_name BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION h2_refuse_name()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER h2_refuse_name ON {table}")
        cursor.execute("DROP FUNCTION h2_refuse_name()")


@pytest.mark.django_db(transaction=True)
@postgresql
def test_the_command_says_the_same_one_line_error_on_one_stream_and_on_two(streams, refused_name):
    errors = []
    for count in (1, 2):
        streams(count)
        SeededUser.objects.all().delete()
        users().all().delete()
        SeedRun.objects.all().delete()
        _, err, code = run_command(
            "seed_users",
            "1000",
            "--force",
            "--seed",
            str(SEED),
            "--batch-size",
            "100",
            *_field_options(),
        )
        errors.append((code, err.strip()))
        assert SeededUser.objects.count() == users().count() == 300
    assert errors[0] == errors[1]
    code, message = errors[0]
    assert code == 1 and len(message.splitlines()) == 1 and "duplicate key" in message
    assert stream_threads() == []


# -- nothing left behind --


@pytest.mark.django_db(transaction=True)
@postgresql
def test_the_streams_threads_and_connections_are_gone_after_a_run(streams):
    streams(2)
    opened = []

    def record(sender, connection, **kwargs):
        if threading.current_thread().name.startswith(THREAD_NAME_PREFIX):
            opened.append(connection)

    connection_created.connect(record, dispatch_uid="test-streams")
    try:
        result = seed(600, batch_size=50)
    finally:
        connection_created.disconnect(dispatch_uid="test-streams")
    assert result.created == 600
    assert len(opened) == 2  # one per stream, for the whole run
    assert [c.connection for c in opened] == [None, None]  # closed
    assert stream_threads() == []


# -- the calling thread's context, in the streams --


@pytest.mark.django_db(transaction=True)
@postgresql
def test_each_streamed_batch_reports_its_copy_to_the_audit_with_the_callers_expectation(
    streams,
):
    streams(2)
    with audit_signal_skips() as report, signal_skips_expected("seeding a fixture"):
        seed(250, batch_size=100)
    assert sorted(s.rows for s in report.skips) == [50, 100, 100]
    assert {(s.operation, s.expected) for s in report.skips} == {("COPY", "seeding a fixture")}
    [site] = report.sites()
    assert site.site == bulk_insert_site()


@pytest.mark.django_db(transaction=True)
@postgresql
def test_a_muted_welcome_receiver_gives_every_streamed_batch_suppressed_records(streams):
    streams(2)
    with muted(WELCOME_MAIL_RECEIVER, reason="fixture"):
        result = seed(450, batch_size=100)
    assert result.welcome_records_suppressed == 450
    assert WelcomeMail.objects.filter(status=WelcomeMail.Status.SUPPRESSED).count() == 450


def _field_options() -> list[str]:
    return [f"--field={name}={value}" for name, value in required_field_values().items()]
