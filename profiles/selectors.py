"""Reads about profiles, shared by commands and checks.

Users are counted through the user model's base manager: the rows of the user
table, the same rows the backfill's statements see, whatever a custom default
manager filters out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.db.models.functions import Mod

from profiles.models import Profile, WelcomeMail
from profiles.sharding import WHOLE_TABLE, Shard


@dataclass(frozen=True)
class ProfileCoverage:
    users: int
    with_profile: int

    @property
    def without_profile(self) -> int:
        return self.users - self.with_profile


def profile_coverage(*, using: str) -> ProfileCoverage:
    users = _users(using).count()
    with_profile = Profile.objects.using(using).count()
    return ProfileCoverage(users=users, with_profile=with_profile)


@dataclass(frozen=True)
class MissingRecords:
    """Users without a record (a profile, a welcome mail), in one shard and in the
    whole table (one read of both)."""

    shard: Shard
    in_shard: int
    in_table: int

    @property
    def in_other_shards(self) -> int:
        return self.in_table - self.in_shard


def users_without_profile(*, using: str, shard: Shard = WHOLE_TABLE) -> MissingRecords:
    return _users_without(Profile, using=using, shard=shard)


def users_without_welcome_mail(*, using: str, shard: Shard = WHOLE_TABLE) -> MissingRecords:
    return _users_without(WelcomeMail, using=using, shard=shard)


def users_without_profile_count(*, using: str, shard: Shard = WHOLE_TABLE) -> int:
    return users_without_profile(using=using, shard=shard).in_shard


def _users_without(
    model: type[Profile] | type[WelcomeMail], *, using: str, shard: Shard
) -> MissingRecords:
    """Users without a row of ``model`` (one with a one-to-one ``user``)."""
    related_name = model._meta.get_field("user").remote_field.related_name
    missing = _users(using).filter(**{f"{related_name}__isnull": True})
    if shard.count == 1:
        count = missing.count()
        return MissingRecords(shard=shard, in_shard=count, in_table=count)
    counts = missing.alias(residue=Mod("pk", shard.count)).aggregate(
        in_table=Count("pk"), in_shard=Count("pk", filter=Q(residue=shard.number - 1))
    )
    return MissingRecords(shard=shard, in_shard=counts["in_shard"], in_table=counts["in_table"])


def _users(using: str) -> Any:
    return get_user_model()._base_manager.db_manager(using)
