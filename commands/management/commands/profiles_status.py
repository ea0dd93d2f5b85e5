"""manage.py profiles_status: how many users have a profile, and a welcome-mail record."""

from __future__ import annotations

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import ON_A_DATABASE
from commands.options import format_option
from commands.render import figures, write_json
from commands.reports.welcome_status import counts_figures, counts_line
from profiles.selectors import profile_coverage
from profiles.welcome.selectors import welcome_mail_counts


@django_command(name="profiles_status", database=True, exit_codes=ON_A_DATABASE)
@format_option(help="Output format; json is one object on one line.")
def command(cmd: ClickCommand, *, database: str, output_format: str) -> None:
    """Count users with and without a profile, and the welcome mails per state.

    Users created through bulk_create, raw SQL or with the profile receiver
    switched off have no profile; 'manage.py backfill_profiles' creates them.
    Users no receiver saw have no welcome-mail record either; 'manage.py
    welcome_mails sync' creates them ('welcome_mails status' shows more).
    """
    coverage = profile_coverage(using=database)
    mails = welcome_mail_counts(using=database)
    if output_format == "json":
        counts = figures(coverage, "users", "with_profile", "without_profile")
        write_json(cmd, {"database": database, **counts, "welcome_mails": counts_figures(mails)})
    elif cmd.verbosity >= 1:
        cmd.stdout.write(
            f"{coverage.users} user(s): {coverage.with_profile} with a profile, "
            f"{coverage.without_profile} without."
        )
        cmd.stdout.write(counts_line(mails))


Command = command.django_command_class
