"""signal_matrix and the detector agree: every operation of the matrix, run under the audit.

For each operation that ran, each ✗ the matrix shows (a receiver listened, the
signal was not sent) in the columns of the operation's kind of write is a skip
the detector attributes to that operation (its call site is the operation's
body in signalmatrix/operations.py), and each ✓ is not. The kind comes from the
operation's key, here, never from the detector. The matrix's own recording
receivers are receivers like any other: they are what the detector finds
skipped there, next to the project's.
"""

from __future__ import annotations

from typing import Any

import pytest

from signalaudit import Skip, audit_signal_skips
from signalmatrix import operations
from signalmatrix.operations import OPERATIONS
from signalmatrix.recording import SIGNALS
from signalmatrix.render import DASH, cells
from signalmatrix.services import MatrixResult, signal_matrix_run
from tests.helpers.users import user_model

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]

SAVE = ("pre_save", "post_save")
DELETE = ("pre_delete", "post_delete")
M2M = ("m2m_changed",)
READS_ONLY = ()

# The signals each operation's write would have sent through Django's paths.
KINDS: dict[str, tuple[str, ...]] = {
    "save_insert": SAVE,
    "save_update": SAVE,
    "save_update_fields": SAVE,
    "create": SAVE,
    "create_user": SAVE,
    "get_or_create_created": SAVE,
    "get_or_create_found": READS_ONLY,  # it finds the user: nothing is written
    "update_or_create_created": SAVE,
    "update_or_create_updated": SAVE,
    "bulk_create": SAVE,
    "bulk_create_ignore_conflicts": SAVE,
    "bulk_create_update_conflicts": SAVE,
    "bulk_update": SAVE,
    "queryset_update": SAVE,
    "delete": DELETE,
    "queryset_delete": DELETE,
    "queryset_delete_unobserved": DELETE,
    "profile_queryset_delete": DELETE,
    "profile_queryset_delete_unobserved": DELETE,
    "loaddata": SAVE,
    "asave": SAVE,
    "acreate": SAVE,
    "groups_add": M2M,
    "groups_remove": M2M,
    "groups_set": M2M,
    "groups_clear": M2M,
    "raw_sql": SAVE,
}
CROSS = "✗"


@pytest.fixture
def audited() -> tuple[MatrixResult, list[Skip]]:
    with audit_signal_skips() as report:
        result = signal_matrix_run(using="default")
    return result, report.skips


def in_operations(skip: Skip) -> bool:
    return skip.site is not None and skip.site.filename == operations.__file__


def skipped_signals(skips: list[Skip], function: str) -> set[str]:
    """The signals whose receivers the skips made in ``function`` (operations.py) did not run."""
    return {
        receiver.signal
        for skip in skips
        if in_operations(skip) and skip.site is not None and skip.site.function == function
        for receiver in skip.receivers
    }


def test_every_operation_of_the_matrix_has_a_kind_here():
    assert set(KINDS) == {op.key for op in OPERATIONS}


def test_each_cross_is_a_detected_skip_and_each_tick_is_not(audited):
    result, skips = audited
    bodies = {op.key: op.body.__name__ for op in OPERATIONS}
    crosses: list[tuple[str, str]] = []
    ticks: list[tuple[str, str]] = []
    for op in result.operations:
        if not op.ran:
            continue
        row = dict(zip(SIGNALS, cells(result, op), strict=False))
        skipped = skipped_signals(skips, bodies[op.key])
        if not KINDS[op.key]:
            assert skipped == set(), f"{op.key} writes nothing, yet: {skipped}"
        for signal in KINDS[op.key]:
            if row[signal] == CROSS:
                crosses.append((op.key, signal))
                assert signal in skipped, f"{op.key}: the matrix shows ✗ for {signal}"
            elif row[signal] != DASH:
                ticks.append((op.key, signal))
                assert signal not in skipped, f"{op.key}: {signal} was sent ({row[signal]})"
    # The comparison meant something: both kinds of cell were there.
    assert ("bulk_create", "post_save") in crosses and ("raw_sql", "pre_save") in crosses
    assert ("create", "post_save") in ticks and ("delete", "pre_delete") in ticks


def test_each_skip_of_an_operation_is_of_its_model_and_the_matrix_s_receivers(audited):
    result, skips = audited
    by_body = {op.body.__name__: op for op in OPERATIONS}
    rows = {op.key: op for op in result.operations}
    for skip in filter(in_operations, skips):
        assert skip.site is not None
        op = by_body[skip.site.function]
        expected = result.m2m_sender if KINDS[op.key] == M2M else rows[op.key].model
        assert skip.model == expected
        names = {receiver.name for receiver in skip.receivers}
        assert "signalmatrix.recording._recorder.<locals>.record" in names


def test_every_skip_of_the_user_model_is_attributed_to_an_operation(audited):
    result, skips = audited
    watched = {user_model()._meta.label, result.m2m_sender}
    elsewhere: list[Any] = [
        (skip.model, str(skip.site))
        for skip in skips
        if skip.model in watched and not in_operations(skip)
    ]
    assert elsewhere == []
