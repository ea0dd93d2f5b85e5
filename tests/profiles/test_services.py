from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from profiles.models import Profile
from profiles.selectors import profile_coverage
from profiles.services import profiles_create_missing

User = get_user_model()

pytestmark = pytest.mark.django_db


def test_create_missing_counts_rows_inserted_within_the_range():
    User.objects.bulk_create([User(username=f"u{i}") for i in range(10)])
    pks = sorted(User.objects.values_list("pk", flat=True))
    assert profiles_create_missing(using="default", first_pk=pks[0], last_pk=pks[4]) == 5
    assert profiles_create_missing(using="default", first_pk=pks[0], last_pk=pks[-1]) == 5
    assert profiles_create_missing(using="default", first_pk=pks[0], last_pk=pks[-1]) == 0
    assert Profile.objects.count() == 10
    assert set(Profile.objects.values_list("bio", flat=True)) == {""}
    assert Profile.objects.filter(created_at__isnull=True).count() == 0


def test_profile_coverage():
    User.objects.create_user("with")
    User.objects.bulk_create([User(username="without1"), User(username="without2")])
    coverage = profile_coverage(using="default")
    assert (coverage.users, coverage.with_profile, coverage.without_profile) == (3, 1, 2)
