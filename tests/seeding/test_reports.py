"""The summary credits receivers with the profiles they made, not a concurrent backfill's."""

from __future__ import annotations

import pytest

from profiles.models import Profile
from switches.muting import muted
from tests.helpers.seeding import seed
from tests.helpers.users import users

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]


def backfill_between_batches(done: int, total: int) -> None:
    """What a backfill_profiles run in another process does while the seeding goes on."""
    missing = users().filter(profile__isnull=True).values_list("pk", flat=True)
    Profile.objects.bulk_create([Profile(user_id=pk) for pk in missing])


def test_bulk_credits_no_profile_to_receivers_while_a_backfill_makes_them():
    result = seed(300, via="bulk", on_batch=backfill_between_batches)
    assert result.profiles_created == 0
    assert Profile.objects.count() == 300  # the backfill's


def test_save_credits_receivers_with_exactly_their_profiles():
    with muted("profiles.receivers.create_profile"):
        muted_run = seed(300, via="save", on_batch=backfill_between_batches)
    assert muted_run.profiles_created == 0
    assert Profile.objects.count() == 300
    assert seed(120, via="save").profiles_created == 120
