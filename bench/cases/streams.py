"""``seed_users --via bulk`` on one stream, in group ``insert_users``: what two streams gain.

``seed_users_bulk`` (bench/cases/seeding.py) runs the service as the command
does, on two streams on PostgreSQL (one elsewhere); this case forces one, so
one run shows both against the raw reference. Two streams need a free core to
gain: the table should say the load average it was taken at.
"""

from __future__ import annotations

from bench.cases.seeding import seed_users_run
from bench.cases.users import GROUP
from bench.registry import case


@case("seed_users_bulk_one_stream", group=GROUP)
def seed_users_bulk_one_stream(size: int, using: str) -> int:
    """seed_users --via bulk forced to one stream: generation, COPY and the server's work
    one after the other, on one connection (on PostgreSQL; elsewhere seed_users_bulk too)."""
    return seed_users_run(size, using, streams=1)
