#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
import traceback
from pathlib import Path


def main() -> None:
    try:
        from django.core.management import execute_from_command_line
    except ImportError:
        # Django's own hint, as one paragraph rather than a traceback.
        sys.stderr.write(
            "Couldn't import Django. Are you sure it's installed and available on your "
            "PYTHONPATH environment variable? Did you forget to activate a virtual "
            "environment? Here: run .venv/bin/python manage.py (make demo creates .venv), "
            "or 'source .venv/bin/activate' first.\n"
        )
        sys.exit(78)  # commands.exitcodes.ExitCode.CONFIG, which needs Django to import

    exit_on_bad_settings(sys.argv)
    execute_from_command_line(sys.argv)


def exit_on_bad_settings(argv: list[str]) -> None:
    """One line naming the variable or module, exit 78, instead of a traceback from settings."""
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management.base import CommandParser, handle_default_options

    from cliproject.env import load_env_file
    from commands.exitcodes import ExitCode

    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    parser.add_argument("--traceback", action="store_true")
    options, _ = parser.parse_known_args(argv[2:])  # as ManagementUtility.execute() does
    try:
        # First: the env file may name the settings module (the settings read it again,
        # for every other way in, which changes nothing then).
        load_env_file(Path(__file__).resolve().parent)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cliproject.settings")
        handle_default_options(options)  # --settings wins over both
        django.setup()  # loads the settings and the database driver they name
    except (ImproperlyConfigured, ImportError) as exc:
        if options.traceback:
            traceback.print_exc()
        elif isinstance(exc, ImproperlyConfigured):
            sys.stderr.write(f"Error: improperly configured: {exc}\n")
        elif settings_module_missing(exc):
            sys.stderr.write(
                f"Error: no settings module {os.environ['DJANGO_SETTINGS_MODULE']!r}: {exc}; "
                "check --settings or DJANGO_SETTINGS_MODULE.\n"
            )
        else:
            sys.stderr.write(
                f"Error: {exc}; is the virtual environment up to date (pip install -e .)?\n"
            )
        sys.exit(ExitCode.CONFIG)


def settings_module_missing(exc: ImportError) -> bool:
    """Is it the settings module itself (or a package on its path) that does not exist?"""
    module = os.environ["DJANGO_SETTINGS_MODULE"]
    return (
        isinstance(exc, ModuleNotFoundError)
        and bool(exc.name)
        and (module == exc.name or module.startswith(f"{exc.name}."))
    )


if __name__ == "__main__":
    main()
