"""Seeding for whichever user model is active: the values its required fields need, and a seed()."""

from __future__ import annotations

from typing import Any

from seeding.models import SeededUser, SeedRun
from seeding.services import SeedResult, users_seed
from tests.helpers.users import user_fields, user_model, users


def required_field_values() -> dict[str, Any]:
    """Values for the fields seed_users cannot make up (StrictUser's tenant; none for auth.User)."""
    model = user_model()
    own = {model.USERNAME_FIELD, model.get_email_field_name()}
    return {name: value for name, value in user_fields(0, "seeded").items() if name not in own}


def seed(count: int, **options: Any) -> SeedResult:
    """users_seed with small batches, seed 7, and the active model's required field values."""
    arguments: dict[str, Any] = {
        "via": "bulk",
        "batch_size": 100,
        "seed": 7,
        "locales": ["en_US"],
        "password": None,
        "using": "default",
        "field_values": required_field_values(),
    }
    arguments.update(options)
    return users_seed(count=count, **arguments)


def username_values(queryset: Any = None) -> set[str]:
    """The USERNAME_FIELD values of ``queryset`` (default: every user)."""
    found = users() if queryset is None else queryset
    return set(found.values_list(user_model().USERNAME_FIELD, flat=True))


def recorded_pks(number: int | None = None) -> set[Any]:
    """The keys of the users seed runs recorded as theirs (of run ``number`` only, if given)."""
    members = SeededUser.objects.all()
    if number is not None:
        members = members.filter(run__number=number)
    return set(members.values_list("user_id", flat=True))


def run(number: int) -> SeedRun:
    return SeedRun.objects.get(number=number)


def legacy_run(number: int, users: int) -> SeedRun:
    """A seed run as migration 0002 found it: which users it created was never recorded."""
    return SeedRun.objects.create(
        number=number,
        via="bulk",
        seed=1,
        requested=users,
        created=users,
        locales="en_US",
        members_recorded=False,
    )
