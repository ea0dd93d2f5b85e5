"""Click commands that are also first-class Django management commands.

Why our own bridge rather than django-click: with django-click 2.5,
``call_command(..., stdout=buf)`` does not capture the output (its issue #28)
and a ``CommandError`` raised inside a command surfaces as
``click.exceptions.Exit`` instead of keeping its ``returncode`` (issue #58
covers system checks). This module is the smallest layer that keeps click's
parsing and help while leaving Django's ``BaseCommand.execute()`` in charge of
output wrappers, colours, system checks and ``CommandError``.

A command module declares::

    @django_command(database=True)
    @click.option(...)
    def command(cmd: ClickCommand, *, database: str, ...) -> None: ...

    Command = command.django_command_class

The leaf function receives the running :class:`ClickCommand` as ``cmd`` (for
``cmd.stdout``, ``cmd.stderr``, ``cmd.style`` and ``cmd.verbosity``) and its
own options as keyword arguments. With ``database=True`` the bridge checks,
before the leaf runs, that the ``--database`` can be worked on
(:func:`commands.dbready.database_ready`: exit 75, 78 or 1 with one line).
A service's :class:`dbtools.errors.UsageError` becomes exit 2, its
:class:`dbtools.errors.ConfigurationError` exit 78, each with its message as
the one line: a leaf never translates them itself.

Every run ends with one INFO record on the ``commands.runs`` logger (command,
exit code, duration, and the rows the leaf put in ``cmd.run_record``); an
unexpected exception is also logged, with its traceback, on ``commands.errors``
(cliproject/logconfig.py). With ``metrics=True`` the command takes
``--metrics-file PATH`` and writes the run there however it ends
(commands/metrics.py); ``cmd.metrics_wanted`` tells the leaf to measure the
figures only such a file shows.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

import click
import django
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from commands.dbready import command_error_for, database_ready
from commands.exitcodes import ExitCode, exit_codes_help
from commands.metrics import RunRecord, usable_metrics_file, write_textfile
from dbtools.errors import ConfigurationError, UsageError, first_line

# Django's options common to every command: parsed by click for the command
# line and --help, and handed to BaseCommand.execute() rather than the leaf.
DJANGO_OPTIONS = (
    "verbosity",
    "settings",
    "pythonpath",
    "traceback",
    "no_color",
    "force_color",
    "skip_checks",
)

EXIT_CODES_HELP = exit_codes_help()

# -h as well as --help, as Django's own commands take it.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

# The loggers an operator wires up (LOGGING in cliproject/logconfig.py names them):
# each run's end, and each unexpected exception with its traceback.
RUNS_LOGGER = "commands.runs"
ERRORS_LOGGER = "commands.errors"

F = TypeVar("F", bound=Callable[..., Any])


def _django_options(func: F, *, database: bool, metrics: bool = False) -> F:
    options = [
        click.option("--version", **_VERSION_OPTION),
        click.option(
            "-v",
            "--verbosity",
            type=click.IntRange(0, 3),
            default=1,
            show_default=True,
            help="0 silent, 1 summary, 2 per-item detail, 3 progress and debugging.",
        ),
        click.option("--settings", help="A Python path to a settings module."),
        click.option("--pythonpath", help="A directory to add to the Python path."),
        click.option("--traceback", is_flag=True, help="Raise on CommandError exceptions."),
        click.option("--no-color", is_flag=True, help="Don't colorize the command output."),
        click.option("--force-color", is_flag=True, help="Force colorization of the output."),
        click.option("--skip-checks", is_flag=True, help="Skip system checks."),
    ]
    if database:
        options.append(
            click.option(
                "--database",
                default=DEFAULT_DB_ALIAS,
                show_default=True,
                callback=_validate_database,
                help="The database alias to use.",
            )
        )
    if metrics:
        options.append(
            click.option(
                "--metrics-file",
                metavar="PATH",
                callback=_validate_metrics_file,
                help="Write how this run went (start, end, duration, exit code, rows, what "
                "is left to do) to PATH as a Prometheus textfile, for node_exporter; "
                "written however the run ends. Needs the extra .[metrics].",
            )
        )
    for option in reversed(options):
        func = option(func)
    return func


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--version`` prints Django's version and exits 0, as Django's own commands do."""
    if value and not ctx.resilient_parsing:
        click.echo(django.get_version())
        ctx.exit()


_VERSION_OPTION: dict[str, Any] = {
    "is_flag": True,
    "expose_value": False,
    "is_eager": True,
    "callback": _print_version,
    "help": "Show Django's version and exit.",
}


def _validate_metrics_file(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    return None if value is None else usable_metrics_file(value)


def _validate_database(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value not in connections:
        known = ", ".join(connections)
        raise click.BadParameter(f"unknown database alias {value!r}; configured: {known}.")
    return value


class ClickCommand(BaseCommand):
    """A Django management command whose interface is a click command or group."""

    click_command: click.Command
    verbosity: int = 1
    # The run of the leaf in progress: a leaf records its rows and figures here.
    run_record: RunRecord
    metrics_wanted: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._output_overrides: dict[str, Any] = {}
        self._leaf: Callable[[], Any] | None = None
        self._database: str | None = None
        self._traceback = False

    @property
    def help(self) -> str:  # type: ignore[override]
        return (self.click_command.help or "").strip().split("\n\n")[0]

    @property
    def stealth_options(self) -> tuple[str, ...]:  # type: ignore[override]
        # Lets call_command(..., some_click_option=value) through its check.
        return tuple(_option_names(self.click_command))

    # -- the two ways in: the command line and call_command() --

    def run_from_argv(self, argv: list[str]) -> NoReturn:
        self._called_from_command_line = True
        prog_name = f"{os.path.basename(argv[0])} {argv[1]}"
        code: int = ExitCode.OK
        try:
            result = self.click_command.main(
                args=argv[2:], prog_name=prog_name, standalone_mode=False, obj=self
            )
            # main() returns --help's exit code; leaves return None.
            code = result if isinstance(result, int) else ExitCode.OK
        except click.ClickException as exc:
            # A usage error names the (sub)command it belongs to, e.g. "manage.py receivers off".
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else prog_name
            self.stderr.write(f"Error: {exc.format_message()} (see '{where} --help')")
            code = exc.exit_code
        except CommandError as exc:
            if self._traceback:
                raise
            if isinstance(exc, SystemCheckError):
                self.stderr.write(str(exc), lambda x: x)
            else:
                self.stderr.write(f"{exc.__class__.__name__}: {exc}")
            code = exc.returncode
        except click.Abort:
            code = ExitCode.SIGINT
        except Exception as exc:  # a bug: still one line, unless --traceback asks for more
            if self._traceback:
                raise
            self.stderr.write(
                f"Error: unexpected {type(exc).__name__}: {first_line(exc)} "
                "(run again with --traceback for details)"
            )
            code = ExitCode.FAILED
        finally:
            with contextlib.suppress(ImproperlyConfigured):
                connections.close_all()
        sys.exit(code)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # call_command() only needs Django's own options from an argparse parser;
        # everything else is passed through to click untouched.
        # No abbreviations: argparse would read click's '--for' as Django's '--force-color'.
        kwargs.setdefault("allow_abbrev", False)
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        return _PassThroughParser(parser)  # type: ignore[return-value]

    def execute(self, *args: Any, **options: Any) -> Any:
        self._output_overrides = {k: options[k] for k in ("stdout", "stderr") if k in options}
        names = _option_names(self.click_command)
        click_values = {
            names.get(k, k): v for k, v in options.items() if k not in ("stdout", "stderr")
        }
        try:
            return self.click_command.main(
                args=[str(a) for a in args],
                prog_name=self.click_command.name,
                standalone_mode=False,
                obj=self,
                default_map=_default_map(self.click_command, click_values),
            )
        except click.ClickException as exc:
            raise CommandError(exc.format_message(), returncode=exc.exit_code) from exc
        except click.Abort as exc:
            raise CommandError("Aborted.", returncode=ExitCode.SIGINT) from exc

    def print_help(self, prog_name: str, subcommand: str) -> None:
        ctx = click.Context(
            self.click_command, info_name=f"{os.path.basename(prog_name)} {subcommand}"
        )
        self.stdout.write(self.click_command.get_help(ctx))

    # -- the leaf, run inside click's invocation --

    def run_leaf(self, func: Callable[..., Any], params: dict[str, Any]) -> Any:
        django_options = {name: params.pop(name) for name in DJANGO_OPTIONS}
        metrics_file = params.pop("metrics_file", None)  # only a metrics=True command has it
        self._traceback = django_options["traceback"]
        self._database = params.get("database")  # only a database=True command has it
        self._leaf = functools.partial(func, self, **params)
        self.run_record = RunRecord(command=_command_name(func))
        self.metrics_wanted = metrics_file is not None
        code: int = ExitCode.FAILED
        error = ""
        try:
            with _sigterm_exits():
                try:
                    result = super().execute(**django_options, **self._output_overrides)
                except DatabaseError as exc:  # from the command, or a check that connects
                    failure = command_error_for(exc)
                    if failure.returncode == ExitCode.FAILED:  # not a known outage: a bug?
                        self._log_unexpected(exc)
                    raise failure from exc
            code = ExitCode.OK
            return result
        except BaseException as exc:
            code = _exit_code_of(exc)
            error = first_line(exc) if isinstance(exc, Exception) else ""
            if isinstance(exc, Exception) and not isinstance(
                exc, CommandError | click.ClickException
            ):
                self._log_unexpected(exc)
            raise
        finally:
            self._leaf = None
            self._end_run(code, metrics_file, error=error)

    def _log_unexpected(self, exc: BaseException) -> None:
        logging.getLogger(ERRORS_LOGGER).error(
            "unexpected %s in %s", type(exc).__name__, self.run_record.command, exc_info=exc
        )

    def _end_run(self, code: int, metrics_file: Any, *, error: str) -> None:
        record = self.run_record
        duration = time.time() - record.started
        logging.getLogger(RUNS_LOGGER).info(
            "%s exited %d after %.2f s%s",
            record.command,
            code,
            duration,
            f": {error}" if error else "",
            extra={
                "command": record.command,
                "exit_code": int(code),
                "duration_seconds": round(duration, 3),
                "rows": record.rows,
                "error": error or None,
                **record.gauges,
            },
        )
        if metrics_file is None:
            return
        try:
            write_textfile(metrics_file, record, exit_code=code)
        except OSError as exc:  # the run's own outcome stands; the file's failure is said
            self.stderr.write(f"Warning: could not write --metrics-file: {first_line(exc)}")

    def handle(self, *args: Any, **options: Any) -> None:
        assert self._leaf is not None
        self.verbosity = options["verbosity"]
        if self._database is not None:
            database_ready(using=self._database)
        try:
            self._leaf()
        except UsageError as exc:
            raise _command_error(exc) from exc


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM ends the run as exit 143, with its record and metrics file written, where
    Python's default would kill it on the spot: e.g. while it waits for a lock, before
    a command's own stop_on_signals (which finishes the batches in flight) takes over.
    Only in the main thread, and only over the default handler."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def exit_143(signum: int, frame: object) -> None:
        raise SystemExit(ExitCode.SIGTERM)

    previous = signal.signal(signal.SIGTERM, exit_143)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _command_name(leaf: Callable[..., Any]) -> str:
    """``backfill_profiles``, or ``welcome_mails sync`` for a group's subcommand."""
    name = leaf.__module__.rsplit(".", 1)[-1]
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.parent is not None and ctx.info_name:
        name = f"{name} {ctx.info_name}"
    return name


def _exit_code_of(exc: BaseException) -> int:
    """The exit code ``exc`` ends the process with, as run_from_argv and shells see it."""
    if isinstance(exc, CommandError):
        return exc.returncode
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt | click.Abort):
        return ExitCode.SIGINT
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else ExitCode.FAILED
    return ExitCode.FAILED


def _command_error(exc: UsageError) -> CommandError:
    """A service's refusal as the CommandError a command raises: 78 for a setting, else 2."""
    code = ExitCode.CONFIG if isinstance(exc, ConfigurationError) else ExitCode.USAGE
    return CommandError(str(exc), returncode=code)


class _PassThroughParser:
    """What call_command() uses of a parser: Django's options parsed, the rest kept for click."""

    def __init__(self, parser: CommandParser) -> None:
        self._parser = parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        # parse_known_args is argparse's public API, but CommandParser only documents
        # parse_args: Django's own options are taken here and click gets the rest.
        parsed, rest = self._parser.parse_known_args(args, namespace)
        parsed.args = rest
        return parsed


class _CommandFailed(click.ClickException):
    """A CommandError seen by plain click (e.g. CliRunner), keeping its exit code."""

    def __init__(self, error: CommandError) -> None:
        super().__init__(str(error))
        self.exit_code = error.returncode  # type: ignore[misc]


def _option_names(command: click.Command) -> dict[str, str]:
    """Keyword names call_command() accepts (``format`` for ``--format``) -> click param names."""
    names: dict[str, str] = {}
    for param in command.params:
        if param.name:
            names[param.name] = param.name
            for opt in param.opts:
                if opt.startswith("--"):
                    names[opt[2:].replace("-", "_")] = param.name
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names.update(_option_names(sub))
    return names


def _default_map(command: click.Command, values: dict[str, Any]) -> dict[str, Any]:
    """call_command's keyword options become click defaults, for a group's subcommands too."""
    default_map: dict[str, Any] = dict(values)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            default_map[name] = _default_map(sub, values)
    return default_map


class _ParsedByPlainClick(click.Command):
    """What an option's callback refuses while click parses (a UsageError, a
    CommandError) keeps its exit code and one line however the command is run:
    through Django (a ClickCommand is the context's object) as a CommandError,
    printed as Django prints one; under plain click (CliRunner) as a ClickException."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except (UsageError, CommandError) as exc:
            error = _command_error(exc) if isinstance(exc, UsageError) else exc
            through_django = isinstance(extra.get("obj"), ClickCommand) or (
                parent is not None and parent.find_object(ClickCommand) is not None
            )
            if through_django:
                raise error from exc
            raise _CommandFailed(error) from exc


class DjangoClickCommand(_ParsedByPlainClick, click.Command):
    """A click command that knows its Django management command class."""

    django_command_class: type[ClickCommand]


class DjangoClickGroup(click.Group):
    django_command_class: type[ClickCommand]


def _leaf_callback(
    func: Callable[..., Any],
    command_class: Callable[[], type[ClickCommand]],
    validate: Callable[[], None] | None,
) -> Callable[..., Any]:
    @functools.wraps(func)
    def callback(**params: Any) -> Any:
        ctx = click.get_current_context()
        django_command = ctx.find_object(ClickCommand)
        try:
            # Options that cannot go together are bad usage whatever state the database
            # is in: refused before the system checks and database_ready connect.
            if validate is not None:
                validate()
        except UsageError as exc:
            error = _command_error(exc)
            if django_command is not None:
                raise error from exc
            raise _CommandFailed(error) from exc
        if django_command is not None:
            return django_command.run_leaf(func, params)
        # Invoked as a plain click command (CliRunner, another click group).
        try:
            return command_class()().run_leaf(func, params)
        except CommandError as exc:
            raise _CommandFailed(exc) from exc

    return callback


def _command_class(command: click.Command) -> type[ClickCommand]:
    return type("Command", (ClickCommand,), {"click_command": command})


def _help_attrs(
    attrs: dict[str, Any], exit_codes: Iterable[ExitCode] | None, failed: str, tempfail: str
) -> dict[str, Any]:
    """click's attributes of a command or group, with what every one of ours has: -h, and
    an epilog of its own text, if any, then the table of the exit codes it returns."""
    table = exit_codes_help(exit_codes, failed=failed, tempfail=tempfail)
    own = attrs.get("epilog")
    return {
        **attrs,
        "epilog": f"{inspect.cleandoc(own)}\n\n{table}" if own else table,
        "context_settings": {**CONTEXT_SETTINGS, **attrs.get("context_settings", {})},
    }


def django_command(
    *,
    database: bool = False,
    metrics: bool = False,
    exit_codes: Iterable[ExitCode] | None = None,
    failed: str = "",
    tempfail: str = "",
    validate: Callable[[], None] | None = None,
    name: str | None = None,
    **attrs: Any,
) -> Callable[[Callable[..., Any]], DjangoClickCommand]:
    """Make ``func`` a click command that is also a Django management command.

    ``exit_codes`` are the codes its ``--help`` lists (default: all), ``failed`` and
    ``tempfail`` what else makes it exit 1 or 75 (e.g. "with --check: users lack a
    profile", "another run holds the lock"). ``validate`` runs first, inside click's
    context, before anything connects: it raises UsageError for options that cannot go
    together (see commands.options.refuse_together)."""

    def decorator(func: Callable[..., Any]) -> DjangoClickCommand:
        click_attrs = _help_attrs(attrs, exit_codes, failed, tempfail)
        callback = _leaf_callback(func, lambda: command.django_command_class, validate)
        callback = _django_options(callback, database=database, metrics=metrics)
        command = click.command(name=name, cls=DjangoClickCommand, **click_attrs)(callback)
        command.django_command_class = _command_class(command)
        return command

    return decorator


def django_group(
    name: str,
    *,
    exit_codes: Iterable[ExitCode] | None = None,
    failed: str = "",
    tempfail: str = "",
    **attrs: Any,
) -> DjangoClickGroup:
    """A click group whose subcommands (made with :func:`subcommand`) are Django commands."""
    click_attrs = _help_attrs(attrs, exit_codes, failed, tempfail)
    # manage.py has already acted on --settings/--pythonpath wherever they stand.
    params: list[click.Parameter] = [
        click.Option(["--version"], **_VERSION_OPTION),
        click.Option(["--settings"], hidden=True, expose_value=False),
        click.Option(["--pythonpath"], hidden=True, expose_value=False),
    ]
    group = DjangoClickGroup(name=name, params=params, **click_attrs)
    group.django_command_class = _command_class(group)
    return group


def subcommand(
    group: DjangoClickGroup,
    *,
    database: bool = False,
    metrics: bool = False,
    exit_codes: Iterable[ExitCode] | None = None,
    failed: str = "",
    tempfail: str = "",
    validate: Callable[[], None] | None = None,
    name: str | None = None,
    **attrs: Any,
) -> Callable[[Callable[..., Any]], click.Command]:
    def decorator(func: Callable[..., Any]) -> click.Command:
        click_attrs = _help_attrs(attrs, exit_codes, failed, tempfail)
        callback = _leaf_callback(func, lambda: group.django_command_class, validate)
        return group.command(name=name, cls=DjangoClickCommand, **click_attrs)(
            _django_options(callback, database=database, metrics=metrics)
        )

    return decorator
