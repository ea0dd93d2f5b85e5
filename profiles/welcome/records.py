"""A new welcome-mail record's field values, and the receiver's one-row write.

Every way of creating records (the receiver here, ``welcome_mails sync`` and
``seed_users`` set-based) takes its values from :func:`pending_values` or
:func:`suppressed_values`, so a record looks the same whoever made it.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connections
from django.utils import timezone

from profiles import sql
from profiles.models import WelcomeMail
from profiles.welcome.joined import joined_before_cutoff


def pending_values(now: datetime | None = None) -> dict[str, object]:
    """A record to be sent now; besides ``user``."""
    now = now or timezone.now()
    return {"status": WelcomeMail.Status.PENDING, "due_at": now, "created_at": now, "reason": ""}


def suppressed_values(reason: str, now: datetime | None = None) -> dict[str, object]:
    """A record never to be sent, saying why; besides ``user``."""
    now = now or timezone.now()
    return {
        "status": WelcomeMail.Status.SUPPRESSED,
        "due_at": now,
        "created_at": now,
        "reason": reason,
    }


def record_new_user(
    *, user: AbstractBaseUser, using: str, suppressed_reason: str | None = None
) -> str | None:
    """The record of a user just saved, in the caller's transaction: pending, or
    suppressed with ``suppressed_reason`` (or because the user joined before the
    rollout cutoff). It rolls back with the user. The status written, or None when
    the user had a record already: insert-if-missing, because in autocommit the
    user is committed before post_save, and a ``welcome_mails sync`` may get there
    first (the unique constraint decides, as for profiles). One row, ``INSERT ...
    VALUES``; a user not in the database is an IntegrityError (the foreign key)."""
    reason = suppressed_reason or joined_before_cutoff(user)
    values = pending_values() if reason is None else suppressed_values(reason)
    created = sql.insert_missing_for_user(
        connections[using], model=WelcomeMail, user_pk=user.pk, values=values
    )
    return str(values["status"]) if created else None
