"""manage.py welcome_mails: reconcile, deliver, suppress, retry and report welcome mails."""

from __future__ import annotations

from commands.clickbridge import django_group

group = django_group(
    "welcome_mails",
    help="""Reconcile, deliver and report the welcome mail of every user.

    Each user has one welcome-mail record: pending, sending (leased to a
    sender), sent, suppressed (never to be sent, with the reason) or failed.
    The post_save receiver writes it with the user; 'sync' creates the records
    of users no receiver saw (bulk inserts, raw SQL, COPY); 'send' delivers the
    pending ones, from cron or with a task worker. See docs/receivers.md.
    """,
)

# --- status (counts per state; --check for monitoring) ---

# --- sync (the set-based reconcile) and suppress (a range, explicitly) ---

# --- send (deliver pending records) and retry (failed records back to pending) ---


Command = group.django_command_class
