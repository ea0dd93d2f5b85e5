"""seed_users, in group ``insert_users`` (through bulk and through save()), and
purge_seeded against it, in group ``purge_seeded``.

Timed end to end, as the commands run them: seeding covers fake data
generation, the seed-run reservation and the inserts; only password hashing is
left out (unusable passwords, as in the other cases). A purge covers finding
each batch's users and deleting them with everything that cascades.
"""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.db.models.signals import post_delete

from bench.cases.users import BATCH_SIZE, GROUP
from bench.registry import case
from profiles.backfill import default_batch_size, profiles_backfill
from profiles.models import Profile, WelcomeMail
from profiles.welcome.sync import welcome_mails_sync
from seeding.generator import FakeUsers
from seeding.models import SeededUser, SeedRun
from seeding.purge import seeded_users_purge
from seeding.services import users_seed
from seeding.writer import Via

User = get_user_model()

# One counter for every case's runs: no run resumes another's (a run with the same
# seed and arguments that did not finish would be resumed).
_seeds = itertools.count(1)


def seed_users_run(
    size: int,
    using: str,
    *,
    via: Via = "bulk",
    batch_size: int = 5000,
    streams: int | None = None,
    seed: int | None = None,
) -> int:
    """``size`` users through seed_users' service, as the command makes them; how many."""
    result = users_seed(
        count=size,
        via=via,
        batch_size=batch_size,
        seed=next(_seeds) if seed is None else seed,
        locales=["en_US"],
        password=None,
        using=using,
        streams=streams,
    )
    return result.created


@case("seed_users_bulk", group=GROUP)
def seed_users_bulk(size: int, using: str) -> int:
    """seed_users --via bulk: Faker's data in bulk, per 5000 binary COPY on two streams
    (PostgreSQL), multi-row INSERTs (SQLite), executemany (MariaDB)."""
    return seed_users_run(size, using, via="bulk")


@case("seed_users_bulk_one_stream", group=GROUP)
def seed_users_bulk_one_stream(size: int, using: str) -> int:
    """seed_users --via bulk forced to one stream: generation, COPY and the server's work
    one after the other, on one connection (on PostgreSQL; elsewhere seed_users_bulk too).

    What seed_users_bulk's two streams gain; they need a free core to gain, so the
    table should say the load average it was taken at.
    """
    return seed_users_run(size, using, streams=1)


@case("seed_users_save", group=GROUP, size_divisor=10)
def seed_users_save(size: int, using: str) -> int:
    """seed_users --via save: save() per user, receivers run; one transaction per 5000."""
    return seed_users_run(size, using, via="save")


def fake_users(size: int, using: str) -> dict[str, Any]:
    users = FakeUsers(seed=next(_seeds), run_number=10**6 + next(_seeds), locales=["en_US"])
    return {"users": users}


@case("users_create_loop", group=GROUP, setup=fake_users, size_divisor=10)
def users_create_loop(size: int, using: str, *, users: FakeUsers) -> int:
    """A plain User.objects.create loop, same data and receivers: the bar for --via save.

    Generation from the same fast generator as seed_users, one transaction per 1000.
    """
    manager = User._default_manager.db_manager(using)
    for batch in users.batches(count=size, batch_size=BATCH_SIZE):
        with transaction.atomic(using=using):
            for username, first_name, last_name, email in batch:
                manager.create(
                    username=username,
                    first_name=first_name,
                    last_name=last_name,
                    email=email,
                    password="!",
                )
    return size


# --- group purge: purge_seeded against seed_users -----------------------------

PURGE = "purge"
OLD_PURGE_BATCH_SIZE = 5000  # purge_seeded's before it went set-based


def users_deleted(using: str) -> int:
    """Users deleted (the user table's shrinkage)."""
    return -User._default_manager.db_manager(using).count()


def seeded_users_with_records(size: int, using: str) -> dict[str, Any]:
    """``size`` users by seed_users --via bulk, then a profile and a welcome-mail record each
    (backfill_profiles and welcome_mails sync): what a purge finds after a demo."""
    seed_users_run(size, using, via="bulk")
    profiles_backfill(using=using, batch_size=default_batch_size(using=using))
    welcome_mails_sync(using=using, batch_size=default_batch_size(using=using))
    return {}


@case("purge_reference_seed_users_bulk", group=PURGE, reference=True)
def purge_reference_seed_users_bulk(size: int, using: str) -> int:
    """seed_users --via bulk, as seed_users_bulk: the speed a purge is held to (0.3x)."""
    return seed_users_run(size, using, via="bulk")


@case("purge_seeded", group=PURGE, setup=seeded_users_with_records, counts=users_deleted)
def purge_seeded(size: int, using: str) -> int:
    """purge_seeded's service: one DELETE per table and batch of 20,000 users.

    Every user has a profile and a welcome-mail record; their SeededUser rows
    and (empty) group and permission rows go too.
    """
    return seeded_users_purge(using=using).users


@case("purge_raw_delete", group=PURGE, setup=seeded_users_with_records, counts=users_deleted)
def purge_raw_delete(size: int, using: str) -> int:
    """One raw DELETE per table, dependents first, in one transaction: the database's floor.

    No WHERE: the throwaway database holds only these users. The deletes still
    pay the foreign-key checks of every table pointing at the user table.
    """
    connection = connections[using]
    qn = connection.ops.quote_name
    dependents = [
        *(model._meta.db_table for model in (Profile, WelcomeMail, SeededUser)),
        *(field.m2m_db_table() for field in User._meta.many_to_many),
    ]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for table in dependents:
            cursor.execute(f"DELETE FROM {qn(table)}")
        cursor.execute(f"DELETE FROM {qn(User._meta.db_table)}")
        deleted = int(cursor.rowcount)
        cursor.execute(f"DELETE FROM {qn(SeedRun._meta.db_table)}")
    return deleted


def _profile_deleted(sender: object, **kwargs: object) -> None:
    pass


@case(
    "purge_seeded_delete_receiver",
    group=PURGE,
    setup=seeded_users_with_records,
    counts=users_deleted,
    size_divisor=5,
)
def purge_seeded_delete_receiver(size: int, using: str) -> int:
    """The same with a post_delete receiver on Profile: the profiles go object by object."""
    post_delete.connect(_profile_deleted, sender=Profile, dispatch_uid="bench-purge")
    try:
        return seeded_users_purge(using=using).users
    finally:
        post_delete.disconnect(sender=Profile, dispatch_uid="bench-purge")


@case(
    "purge_queryset_delete",
    group=PURGE,
    setup=seeded_users_with_records,
    counts=users_deleted,
    size_divisor=5,
)
def purge_queryset_delete(size: int, using: str) -> int:
    """User.objects.filter(pk__in=...).delete() per 5000 seeded users: purge_seeded before.

    Django loads every user, then deletes the dependents 999 keys a statement
    on SQLite (the whole batch elsewhere).
    """
    manager = User._default_manager.db_manager(using)
    members = SeededUser.objects.using(using).order_by("user_id").values_list("user_id", flat=True)
    deleted = 0
    while pks := list(members[:OLD_PURGE_BATCH_SIZE]):
        with transaction.atomic(using=using):
            deleted += manager.filter(pk__in=pks).delete()[1].get(User._meta.label, 0)
    SeedRun.objects.using(using).all().delete()
    return deleted
