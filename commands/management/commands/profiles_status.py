"""manage.py profiles_status: how many users have a profile, and how many lack one."""

from __future__ import annotations

from commands.clickbridge import ClickCommand, django_command
from commands.options import format_option
from commands.render import figures, write_json
from profiles.selectors import profile_coverage


@django_command(name="profiles_status", database=True)
@format_option(help="Output format; json is one object on one line.")
def command(cmd: ClickCommand, *, database: str, output_format: str) -> None:
    """Count users with and without a profile.

    Users created through bulk_create, raw SQL or with the profile receiver
    switched off have none; 'manage.py backfill_profiles' creates them.
    """
    coverage = profile_coverage(using=database)
    if output_format == "json":
        counts = figures(coverage, "users", "with_profile", "without_profile")
        write_json(cmd, {"database": database, **counts})
    elif cmd.verbosity >= 1:
        cmd.stdout.write(
            f"{coverage.users} user(s): {coverage.with_profile} with a profile, "
            f"{coverage.without_profile} without."
        )


Command = command.django_command_class
