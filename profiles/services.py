"""Writes: the one place that knows how to make a profile.

The post_save receiver (through :func:`profile_ensure`, one row) and
``backfill_profiles`` (per batch, see :mod:`profiles.backfill`, set-based) both
run an insert-if-missing statement of :mod:`profiles.sql`, with the field
values of :func:`profile_defaults`: safe to run twice, concurrently, or while a
receiver creates the same profile.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connections
from django.utils import timezone

from profiles import sql


def profile_defaults() -> dict[str, object]:
    """Field values of a new profile, besides ``user``; shared by every way of creating one."""
    return {"bio": "", "created_at": timezone.now()}


def profiles_create_missing(*, using: str, last_pk: Any, first_pk: Any = None) -> int:
    """Create the missing profiles of users with ``first_pk <= pk <= last_pk``
    (no ``first_pk``: every pk up to ``last_pk``), in the database's pk order.

    One set-based statement; returns the number of rows it inserted. The
    one-to-one constraint plus the backend's "ignore duplicates" clause make it
    correct without any lock, even against a concurrent run or receiver.
    """
    return sql.insert_missing(
        connections[using], values=profile_defaults(), last_pk=last_pk, first_pk=first_pk
    )


def profile_ensure(*, user: AbstractBaseUser, using: str) -> bool:
    """Give ``user`` a profile unless it has one; True when one was created.

    One row, ``INSERT ... VALUES``: the receiver's statement, run for every user
    saved. A user not in the database is an IntegrityError (the foreign key)."""
    return sql.insert_missing_for_user(
        connections[using], user_pk=user.pk, values=profile_defaults()
    )
