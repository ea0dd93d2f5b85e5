#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
import traceback


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cliproject.settings")
    from django.core.management import execute_from_command_line

    exit_on_bad_settings(sys.argv)
    execute_from_command_line(sys.argv)


def exit_on_bad_settings(argv: list[str]) -> None:
    """One line naming the variable, exit 78, instead of a traceback from settings.py."""
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management.base import CommandParser, handle_default_options

    from commands.exitcodes import ExitCode

    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    parser.add_argument("--traceback", action="store_true")
    options, _ = parser.parse_known_args(argv[2:])  # as ManagementUtility.execute() does
    handle_default_options(options)
    try:
        django.setup()  # loads the settings and the database driver they name
    except ImproperlyConfigured as exc:
        if options.traceback:
            traceback.print_exc()
        else:
            sys.stderr.write(f"Error: improperly configured: {exc}\n")
        sys.exit(ExitCode.CONFIG)


if __name__ == "__main__":
    main()
