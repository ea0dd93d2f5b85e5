"""Shards of the user table: the users one of N backfill processes takes.

A value type of its own, so the selectors (reads) and the services (writes)
both import it without a read module importing a write module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models

# The largest N: every backend binds it, and it fits the smallest integer column
# a residue is computed against, so ``pk % N`` never overflows or widens.
MAX_SHARDS = 2**31 - 1


@dataclass(frozen=True)
class Shard:
    """Shard ``number`` of ``count``: the users whose pk % count == number - 1.

    A residue class, not a pk range, so shards stay disjoint and complete
    whatever batch size each process uses and however the table grows.
    """

    number: int = 1
    count: int = 1

    def __str__(self) -> str:
        return f"{self.number}/{self.count}"


WHOLE_TABLE = Shard()


def shard_from(number: int, count: int) -> Shard:
    """A shard of the active user model, or ValueError saying why there is none.

    Only an integer pk has residues; a UUID or a string has no ``%`` that every
    backend computes alike, so such a model is walked whole (``--jobs`` is the
    way to parallelism there).
    """
    if not 1 <= number <= count <= MAX_SHARDS:
        raise ValueError(f"use K/N with 1 <= K <= N <= {MAX_SHARDS}, e.g. 2/4")
    if count > 1 and not user_pk_is_integer():
        user_model = get_user_model()
        pk = user_model._meta.pk
        assert pk is not None
        raise ValueError(
            f"shards split users by pk % N, and the primary key of {user_model._meta.label} "
            f"({pk.name}, a {type(_value_field(pk)).__name__}) is not an integer; "
            "run without --shard (--jobs N runs batches in parallel)"
        )
    return Shard(number=number, count=count)


def user_pk_is_integer() -> bool:
    pk = get_user_model()._meta.pk
    assert pk is not None
    return isinstance(_value_field(pk), models.IntegerField)


def _value_field(field: Any) -> Any:
    """The field that holds a pk's values: itself, or what a parent link points to."""
    while field.is_relation:
        field = field.target_field
    return field
