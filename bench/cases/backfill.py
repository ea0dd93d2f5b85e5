"""Group ``backfill_profiles``: creating the profiles of users who have none.

Every repetition starts from ``size`` users without profiles (made untimed by
seed_users' bulk path); the body creates their profiles.
"""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.utils import timezone

from bench.cases.seeding import seed_users_run
from bench.registry import case
from profiles.backfill import default_batch_size, profiles_backfill
from profiles.models import Profile

GROUP = "backfill_profiles"
CHUNK = 1000

User = get_user_model()


def users_without_profiles(size: int, using: str) -> dict[str, Any]:
    seed_users_run(size, using, batch_size=20000)
    return {}


@case(
    "backfill_raw_insert_select",
    group=GROUP,
    reference=True,
    setup=users_without_profiles,
    counts=Profile,
)
def backfill_raw_insert_select(size: int, using: str) -> int:
    """One raw INSERT ... SELECT over every user in one transaction: the limit."""
    connection = connections[using]
    qn = connection.ops.quote_name
    sql = (
        f"INSERT INTO {qn(Profile._meta.db_table)} (user_id, bio, created_at) "
        f"SELECT {qn('id')}, '', %s FROM {qn(User._meta.db_table)}"
    )
    now = Profile._meta.get_field("created_at").get_db_prep_save(timezone.now(), connection)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(sql, [now])
        return int(cursor.rowcount)


@case("backfill_orm_loop", group=GROUP, setup=users_without_profiles, counts=Profile)
def backfill_orm_loop(size: int, using: str) -> int:
    """The usual ORM loop: ids without a profile in chunks, bulk_create per 1000."""
    created = 0
    missing = (
        User._default_manager.db_manager(using)
        .filter(profile__isnull=True)
        .values_list("pk", flat=True)
        .iterator(chunk_size=CHUNK)
    )
    for chunk in iter(lambda: list(itertools.islice(missing, CHUNK)), []):
        with transaction.atomic(using=using):
            created += len(
                Profile.objects.using(using).bulk_create([Profile(user_id=pk) for pk in chunk])
            )
    return created


@case("backfill_profiles", group=GROUP, setup=users_without_profiles, counts=Profile)
def backfill_profiles(size: int, using: str) -> int:
    """manage.py backfill_profiles' service at its default batch size, one statement a batch."""
    return profiles_backfill(using=using, batch_size=default_batch_size(using=using)).created


@case("backfill_profiles_2_jobs", group=GROUP, setup=users_without_profiles, counts=Profile)
def backfill_profiles_2_jobs(size: int, using: str) -> int:
    """backfill_profiles --jobs 2: two batches at once on two connections (SQLite: one)."""
    batch_size = default_batch_size(using=using)
    return profiles_backfill(using=using, batch_size=batch_size, jobs=2).created
