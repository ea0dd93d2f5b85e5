"""Group ``seed_fixed_cost``: a small seed run into an empty table and into a big one.

Cron runs small seeds into big tables, and so do tests: whatever a run costs
that grows with the rows already there (a check or a count over the whole
user table) shows as the gap between the two cases. Both run ``seed_users
--via bulk`` through its service on size ÷ 2 users (10,000 at the default
``--size`` 20000), as ``seed_users_bulk`` does. The big table holds 300 times
that many users (3,000,000 at the default size; 3,000 at a test's 20 rows),
each with a profile and a welcome-mail record, as after ``backfill_profiles``
and ``welcome_mails sync``; it is built once, untimed, and each repetition's
seed run is purged afterwards, untimed. Goal: into the big table at most 1.2x
the time into the empty one (a ratio of at least 0.83).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connections, transaction

from bench.cases.seeding import seed_users_run
from bench.registry import case
from dbtools.cascade import cascade_delete, cascade_plan
from profiles.backfill import default_batch_size, profiles_backfill
from profiles.models import Profile, WelcomeMail
from profiles.welcome.sync import welcome_mails_sync
from seeding.models import SeededUser, SeedRun

GROUP = "seed_fixed_cost"
# The big table's users per user of the small seed: 3,000,000 against 10,000.
BACKGROUND_FACTOR = 300
# The background's seed run; the measured runs take theirs from seed_users_run's, from 1 up.
BACKGROUND_SEED = 0

User = get_user_model()


def users_with_records(size: int, using: str) -> None:
    """300 x size seeded users, then a profile and a welcome-mail record each."""
    seed_users_run(BACKGROUND_FACTOR * size, using, seed=BACKGROUND_SEED, batch_size=20_000)
    batch_size = default_batch_size(using=using)
    profiles_backfill(using=using, batch_size=batch_size, jobs=2)
    welcome_mails_sync(using=using, batch_size=batch_size, jobs=2)
    connection = connections[using]
    if connection.vendor == "postgresql":
        # What autovacuum does within a minute of such a load; without it the planner
        # knows nothing of 3,000,000 rows and the seed's queries are timed on guesses.
        qn = connection.ops.quote_name
        tables = (User, Profile, WelcomeMail, SeededUser, SeedRun)
        with connection.cursor() as cursor:
            for model in tables:
                cursor.execute(f"VACUUM ANALYZE {qn(model._meta.db_table)}")


def seed_runs_purge(size: int, using: str) -> None:
    """Delete the users of every seed run but the background's, and those runs."""
    runs = SeedRun.objects.using(using).exclude(seed=BACKGROUND_SEED)
    members = SeededUser.objects.using(using).filter(run__in=runs)
    with transaction.atomic(using=using):
        cascade_delete(
            cascade_plan(User), list(members.values_list("user_id", flat=True)), using=using
        )
        runs.delete()


@case("seed_fixed_cost_empty_table", group=GROUP, reference=True, size_divisor=2)
def seed_fixed_cost_empty_table(size: int, using: str) -> int:
    """seed_users --via bulk of size ÷ 2 users into an empty user table.

    Through its service, batches of 5000, as seed_users_bulk.
    """
    return seed_users_run(size, using)


@case(
    "seed_fixed_cost_big_table",
    group=GROUP,
    size_divisor=2,
    background=users_with_records,
    teardown=seed_runs_purge,
)
def seed_fixed_cost_big_table(size: int, using: str) -> int:
    """The same seed into a table of 300 times as many users, each with a profile and a mail record.

    The table is built once, untimed; each repetition's run is purged after it.
    """
    return seed_users_run(size, using)
