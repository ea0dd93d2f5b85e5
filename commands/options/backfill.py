"""backfill_profiles' own option: --shard K/N."""

from __future__ import annotations

import re

import click

from profiles.sharding import WHOLE_TABLE, Shard, shard_from


def parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> Shard:
    if value is None:
        return WHOLE_TABLE
    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not a shard; use K/N, e.g. 2/4.")
    try:
        return shard_from(int(match[1]), int(match[2]))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}.") from None
