"""The summary credits receivers with the profiles and welcome-mail records they made, not
a concurrent backfill's or sync's."""

from __future__ import annotations

import pytest

from profiles.models import Profile, WelcomeMail
from profiles.receivers import WELCOME_MAIL_RECEIVER
from profiles.welcome.records import pending_values
from switches.muting import muted
from switches.services import receiver_switches_off
from tests.helpers.seeding import recorded_pks, seed
from tests.helpers.stopping import StopAtCheck
from tests.helpers.users import create_user, users

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


# -- welcome-mail records: the batch's own, counted inside the batch --


def sync_between_batches(done: int, total: int) -> None:
    """What 'welcome_mails sync' in another process does while the seeding goes on."""
    missing = users().filter(welcome_mail__isnull=True).values_list("pk", flat=True)
    WelcomeMail.objects.bulk_create([WelcomeMail(user_id=pk, **pending_values()) for pk in missing])


def test_bulk_credits_no_welcome_record_to_the_run_while_a_sync_makes_them():
    result = seed(300, via="bulk", on_batch=sync_between_batches, count_table=True)
    assert (result.welcome_records_pending, result.welcome_records_suppressed) == (0, 0)
    assert result.run_users_without_welcome_mail == 300  # the run gave them none
    assert WelcomeMail.objects.count() == 300  # the sync's
    assert result.users_without_welcome_mail == 0


def test_save_counts_the_records_its_receiver_wrote_pending_and_suppressed():
    create_user(0, "signup")  # a record that is not the run's
    result = seed(250, via="save")
    assert (result.welcome_records_pending, result.welcome_records_suppressed) == (250, 0)
    muted_run = seed(120, via="save", mute=[WELCOME_MAIL_RECEIVER], count_table=True)
    assert (muted_run.welcome_records_pending, muted_run.welcome_records_suppressed) == (0, 120)
    assert muted_run.run_users_without_welcome_mail == muted_run.users_without_welcome_mail == 0
    # The run's records as they stand after it: never committed here, so none sent.
    assert (muted_run.welcome_mails_sent, muted_run.welcome_mails_pending) == (0, 0)
    assert (result.welcome_mails_sent, result.welcome_mails_pending) == (0, 250)
    assert result.mail_destination is not None


def test_bulk_muted_writes_the_batchs_records_suppressed_for_any_user_model():
    before = create_user(0, "signup")
    result = seed(230, via="bulk", mute=[WELCOME_MAIL_RECEIVER])
    assert (result.welcome_records_pending, result.welcome_records_suppressed) == (0, 230)
    seeded = WelcomeMail.objects.exclude(user_id=before.pk)
    assert seeded.filter(status="suppressed").count() == 230
    assert set(seeded.values_list("user_id", flat=True)) == recorded_pks(result.run_number)
    assert WelcomeMail.objects.get(user_id=before.pk).status == "pending"
    assert result.welcome_mails_sent is None  # bulk: no delivery to report


def test_bulk_while_the_receiver_is_switched_off_writes_suppressed_records_saying_why():
    receiver_switches_off(
        names=[WELCOME_MAIL_RECEIVER], reason="CRM import", by="ops", until=None, using="default"
    )
    result = seed(40, via="bulk")
    assert (result.welcome_records_pending, result.welcome_records_suppressed) == (0, 40)
    assert set(WelcomeMail.objects.values_list("reason", flat=True)) == {
        f"{WELCOME_MAIL_RECEIVER} switched off by ops: CRM import"
    }


def test_a_stopped_batch_credits_none_of_its_records():
    stop = StopAtCheck(2)  # the second batch is stopped, and rolls back
    result = seed(300, via="save", stop=stop)
    assert result.created == 100
    assert result.welcome_records_pending == WelcomeMail.objects.count() == 100
