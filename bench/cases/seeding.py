"""This project's rows in group ``insert_users``: seed_users, through bulk and through save().

Timed end to end, as the command runs them: fake data generation, the seed-run
reservation and the inserts; only password hashing is left out (unusable
passwords, as in the other cases).
"""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from bench.cases.users import BATCH_SIZE, GROUP
from bench.registry import case
from seeding.generator import FakeUsers
from seeding.services import Via, users_seed

User = get_user_model()

_seeds = itertools.count(1)


def _seed(size: int, using: str, *, via: Via) -> int:
    result = users_seed(
        count=size,
        via=via,
        batch_size=5000,
        seed=next(_seeds),
        locales=["en_US"],
        password=None,
        using=using,
    )
    return result.created


@case("seed_users_bulk", group=GROUP)
def seed_users_bulk(size: int, using: str) -> int:
    """seed_users --via bulk: Faker's data in bulk, binary COPY / executemany per 5000."""
    return _seed(size, using, via="bulk")


@case("seed_users_save", group=GROUP, size_divisor=10)
def seed_users_save(size: int, using: str) -> int:
    """seed_users --via save: save() per user, receivers run; one transaction per 5000."""
    return _seed(size, using, via="save")


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
