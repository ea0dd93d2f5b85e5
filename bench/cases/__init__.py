"""Every benchmark case; importing this package registers them, group by group."""

import importlib

# Registration order is the order of the report: user inserts first, then the
# backfill, then the welcome mail's groups, then the signal audit's cost.
for _module in (
    "users",
    "seeding",
    "fixed_cost",
    "receiver",
    "backfill",
    "welcome",
    "audit",
):
    importlib.import_module(f"bench.cases.{_module}")
