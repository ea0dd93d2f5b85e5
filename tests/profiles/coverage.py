"""Users without profiles, and what a backfill must leave: every user with exactly one.

For any user model (see tests/helpers/users.py): nothing here assumes a
``username``, an integer pk or an order of pks Python would agree with.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from profiles.models import Profile
from tests.helpers.users import bulk_users, users


def users_with_gaps(count: int, prefix: str = "bulk") -> list[Any]:
    """``count`` users without a profile, every third one deleted again: gaps in the pks."""
    made = bulk_users(count, prefix)
    users().filter(pk__in=[u.pk for u in made[::3]]).delete()
    return [u for i, u in enumerate(made) if i % 3]


def assert_every_user_has_exactly_one_profile() -> None:
    every = set(users().values_list("pk", flat=True))
    assert set(Profile.objects.values_list("user_id", flat=True)) == every
    assert Profile.objects.count() == len(every)


def json_pk(pk: Any) -> Any:
    """A pk as the command's JSON gives it back."""
    return json.loads(json.dumps(pk, cls=DjangoJSONEncoder))
