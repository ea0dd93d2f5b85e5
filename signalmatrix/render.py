"""The matrix as a text table, Markdown, or the JSON object: all from one MatrixResult."""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

from profiles.models import Profile
from signalmatrix.recording import SIGNALS, Event
from signalmatrix.services import MatrixResult, OperationResult

# Not "-" and "x": these read as symbols in a table.
DASH = "–"  # noqa: RUF001
TIMES = "×"  # noqa: RUF001

COLUMNS = ("operation", *SIGNALS, "profile created", "notes")

# The text output fits a terminal of this many columns (all but --wide).
WIDTH = 100
# What the signals column keeps when labels are long: "pre_save; post_save created=True".
RECEIVED_MIN_WIDTH = 36
GAP = "  "
NBSP = "\N{NO-BREAK SPACE}"
OPERATION_HEADER, RECEIVED_HEADER, PROFILE_HEADER = "operation", "signals a receiver got", "profile"
HEADERS = (OPERATION_HEADER, RECEIVED_HEADER, PROFILE_HEADER)

LEGEND = (
    ("✓", "a receiver got the signal"),
    ("argument values", "it got it with these (raw and update_fields only when set)"),
    ("✗", "not sent, although a receiver listened"),
    (
        DASH,
        "no receiver listened (the 'no delete receiver' rows; m2m_changed when the user "
        "model has no groups), or no user was created",
    ),
    (f"{TIMES}N", "sent N times, once per object"),
    ("Profile ...", "sent for another model than the row's"),
    ("n/a", "the backend or the user model cannot run it (the notes say why)"),
)


def cells(result: MatrixResult, op: OperationResult) -> list[str]:
    """One row of the table, without the operation's name."""
    if not op.ran:
        note = f"not supported: {op.unsupported}" if op.unsupported else f"failed: {op.error}"
        return [*(["n/a"] * len(SIGNALS)), "n/a", note]
    signal_cells = [_signal_cell(result, op, name) for name in SIGNALS]
    return [*signal_cells, _profile_cell(op), _notes(op)]


def grouped(events: tuple[Event, ...], signal: str) -> list[tuple[Event, int]]:
    """The events of ``signal``, alike ones counted together, in the order first seen."""
    counts: dict[Event, int] = {}
    for event in events:
        if event.signal == signal:
            counts[event] = counts.get(event, 0) + 1
    return list(counts.items())


def _signal_cell(result: MatrixResult, op: OperationResult, signal: str) -> str:
    if signal not in op.listened:
        return DASH
    groups = grouped(op.events, signal)
    if not groups:
        return "✗"
    own = result.m2m_sender if signal == "m2m_changed" else op.model
    groups.sort(key=lambda group: group[0].sender != own)  # the row's own model first
    parts = []
    for event, count in groups:
        text = _arguments_text(event)
        if event.sender != own:
            text = f"{event.sender.rsplit('.', 1)[-1]} {text}"
        parts.append(f"{text} {TIMES}{count}" if count > 1 else text)
    return ", ".join(parts)


def _arguments_text(event: Event) -> str:
    if event.signal == "m2m_changed":
        return str(event.argument("action"))
    parts = []
    if event.signal == "post_save":
        parts.append(f"created={event.argument('created')}")
    if event.argument("raw"):
        parts.append("raw=True")
    update_fields = event.argument("update_fields")
    if update_fields is not None:
        parts.append(f"update_fields=[{', '.join(update_fields)}]")
    return " ".join(parts) or "✓"


def _profile_cell(op: OperationResult) -> str:
    created = op.profile_created
    if created is None:
        return DASH
    if created:
        return "✓"
    if op.profiles_created <= 0:
        return "✗"
    return f"{op.profiles_created} of {op.users_created}"


def _notes(op: OperationResult) -> str:
    notes = []
    if op.fast_deleted:
        notes.append(f"fast delete of {_names(op.fast_deleted)}: rows deleted, never loaded")
    if op.delete_listened_by_others:
        others = _names(op.delete_listened_by_others)
        notes.append(f"yet a delete receiver of the project listens for {others}")
    return "; ".join(notes)


def _names(labels: tuple[str, ...]) -> str:
    return ", ".join(label.rsplit(".", 1)[-1] for label in labels)


def _label(op: OperationResult, *, markdown: bool) -> str:
    code = f"`{op.code}`" if markdown else op.code
    return f"{code} ({op.variant})" if op.variant else code


def _receivers_line(result: MatrixResult, *, markdown: bool, glue: str = " ") -> str:
    if not result.receivers:
        return "No receiver is connected to these models."
    quote = "`" if markdown else ""
    items = [
        f"{quote}{r.name}{quote} ({r.signal}, {r.sender or 'any sender'}): {_state(r.state)}"
        for r in result.receivers
    ]
    items = [item.replace(" ", glue) for item in items]
    return "Receivers of these models: " + "; ".join(items) + "."


def _state(state: str) -> str:
    return {"off": "switched off", "muted": "muted in this process"}.get(state, state)


def _summary(result: MatrixResult) -> str:
    ran = sum(op.ran for op in result.operations)
    text = f"Ran {ran} operation(s) in a transaction that was rolled back"
    unsupported = sum(op.unsupported is not None for op in result.operations)
    if unsupported:
        text += f"; {unsupported} not supported by this backend or user model"
    if result.failed:
        text += f"; {len(result.failed)} failed"
    return text + ": no row was changed."


def _heading(result: MatrixResult, *, markdown: bool) -> str:
    if markdown:
        database, model = f"`{result.database}`", f"`{result.user_model}`"
    else:
        database, model = repr(result.database), result.user_model
    return (
        f"{result.backend}, database {database}, Django {result.django_version}, "
        f"user model {model}."
    )


def render_text(result: MatrixResult, *, verbosity: int = 1, wide: bool = False) -> Iterator[str]:
    """The lines of the text output: heading, table, legend, receivers, summary.

    Every line fits :data:`WIDTH` columns: per operation, the signals a
    receiver got (:func:`received`) and the profile cell, wrapped where a cell
    is long. ``wide`` gives the grid of the Markdown table instead, one column
    per signal, as wide as its longest cell (about 350 columns).
    """
    if wide:
        yield from _wide_text(result, verbosity=verbosity)
        return
    yield from _wrap(f"Signal matrix: {_heading(result, markdown=False)}")
    yield ""
    yield from _narrow_table(result)
    yield ""
    yield from _wrap(_narrow_legend(result))
    # Each receiver on one line, unless it alone is too long.
    yield from _wrap(_receivers_line(result, markdown=False, glue=NBSP))
    if result.not_rolled_back:
        yield from _wrap(f"Not rolled back: {result.not_rolled_back}")
    if verbosity >= 2:
        yield ""
        for line in _details(result):
            yield from _wrap(line, indent="    " if line.startswith("  ") else "  ")
    yield from _wrap(_summary(result))


def received(result: MatrixResult, op: OperationResult, *, glue: str = " ") -> str:
    """What the narrow table shows of ``op``: each signal a receiver got, with its cell.

    ``pre_save; post_save created=True``, in the words of the grid's cells; "none"
    when nothing came although receivers listened. Signals that were listened
    to in other rows but not in this one are named ("no delete receiver"), and
    the notes follow. The table joins a signal's name, its check mark and its
    count with ``glue=NBSP``, so wrapping (:func:`_wrap`) never parts them.
    """
    if not op.ran:
        return f"n/a: {cells(result, op)[-1]}"
    got = [
        name if cell == "✓" else f"{name}{glue}{re.sub(f' (?=[✓{TIMES}])', glue, cell)}"
        for name in SIGNALS
        if (cell := _signal_cell(result, op, name)) not in ("✗", DASH)
    ]
    parts = ["; ".join(got) or "none"]
    unheard = [name for name in _listened_anywhere(result) if name not in op.listened]
    if unheard:
        parts.append(f"no receiver listened for {', '.join(unheard)}")
    if notes := _notes(op):
        parts.append(notes)
    return "; ".join(parts)


def _listened_anywhere(result: MatrixResult) -> list[str]:
    return [name for name in SIGNALS if any(name in op.listened for op in result.operations)]


def _narrow_table(result: MatrixResult) -> Iterator[str]:
    ops = result.operations
    profiles = ["n/a" if not op.ran else _profile_cell(op) for op in ops]
    got = [received(result, op, glue=NBSP) for op in ops]
    labels = [_label(op, markdown=False) for op in ops]
    profile_width = max(len(PROFILE_HEADER), *map(len, profiles))
    room = WIDTH - 2 * len(GAP) - profile_width
    label_width = max(len(OPERATION_HEADER), *map(len, labels))
    got_width = max(len(RECEIVED_HEADER), *map(len, got))
    if label_width + got_width > room:
        # The code on one line, the variant below it, and the rest to the signals.
        longest_code = max(len(op.code) for op in ops)
        label_width = min(label_width, longest_code, room - RECEIVED_MIN_WIDTH)
        label_width = max(len(OPERATION_HEADER), label_width)
        got_width = room - label_width
    widths = (label_width, got_width, profile_width)
    yield GAP.join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip()
    yield GAP.join("-" * w for w in widths)
    for op, label, text, profile in zip(ops, labels, got, profiles, strict=True):
        label_lines = [label] if len(label) <= label_width else _label_lines(op, label_width)
        columns = (label_lines, _wrap(text, width=got_width), [profile])
        for parts in itertools.zip_longest(*columns, fillvalue=""):
            yield GAP.join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip()


def _label_lines(op: OperationResult, width: int) -> list[str]:
    lines = _wrap(op.code, width=width)
    if op.variant:
        lines += _wrap(f"({op.variant})", width=width, indent="  ", first="  ")
    return lines


def _narrow_legend(result: MatrixResult) -> str:
    """The legend of the narrow table, naming only what the table shows."""
    ops = [op for op in result.operations if op.ran]
    shown = " ".join(received(result, op) for op in ops)
    profiles = {_profile_cell(op) for op in ops}
    models = [result.user_model, Profile._meta.label, *filter(None, [result.m2m_sender])]
    parts = [
        f"Receivers of our own listened for {_and(_listened_anywhere(result))} of "
        f"{_and(models)}; each signal that came is listed with the arguments that tell "
        "operations apart (created, and raw and update_fields when set)"
    ]
    if TIMES in shown:
        parts.append(f"{TIMES}N: sent N times, once per object")
    if any(_from_other_model(result, op) for op in ops):
        parts.append("Profile ...: sent for another model than the row's")
    if any(not op.events for op in ops):
        parts.append("none: no signal came")
    profile = [
        meaning
        for symbol, meaning in (
            ("✓", "✓ every user it created has a profile"),
            ("✗", "✗ none has"),
            (DASH, f"{DASH} it created no user"),
        )
        if symbol in profiles
    ]
    if any(" of " in cell for cell in profiles):
        profile.append("N of M: N of the M users it created have one")
    text = "; ".join(parts) + "."
    if profile:
        text += f" profile: {', '.join(profile)}."
    if len(ops) < len(result.operations):
        text += " n/a: the backend or the user model cannot run it."
    return text + " --wide: one column per signal."


def _from_other_model(result: MatrixResult, op: OperationResult) -> bool:
    own = {name: result.m2m_sender if name == "m2m_changed" else op.model for name in SIGNALS}
    return any(event.sender != own[event.signal] for event in op.events)


def _and(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def _wrap(text: str, *, width: int = 0, indent: str = "", first: str = "") -> list[str]:
    """``text`` in lines of at most ``width`` (default :data:`WIDTH`); words longer are cut."""
    lines = textwrap.wrap(
        text,
        width=width or WIDTH,
        initial_indent=first,
        subsequent_indent=indent,
        break_on_hyphens=False,
    )
    return [line.replace(NBSP, " ") for line in lines] or [""]


def _wide_text(result: MatrixResult, *, verbosity: int) -> Iterator[str]:
    rows = [list(COLUMNS)]
    rows += [[_label(op, markdown=False), *cells(result, op)] for op in result.operations]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    yield f"Signal matrix: {_heading(result, markdown=False)}"
    yield ""
    for index, row in enumerate(rows):
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        if index == 0:
            yield "  ".join("-" * width for width in widths)
    yield ""
    yield from textwrap.wrap("; ".join(f"{k}: {v}" for k, v in LEGEND) + ".", width=WIDTH)
    yield _receivers_line(result, markdown=False)
    if result.not_rolled_back:
        yield f"Not rolled back: {result.not_rolled_back}"
    if verbosity >= 2:
        yield ""
        yield from _details(result)
    yield _summary(result)


def _details(result: MatrixResult) -> Iterator[str]:
    for op in result.operations:
        yield f"{_label(op, markdown=False)}:"
        if not op.ran:
            yield f"  {op.unsupported or op.error}"
        for event in op.events:
            arguments = ", ".join(f"{name}={value!r}" for name, value in event.arguments)
            yield f"  {event.signal} from {event.sender}: {arguments}"
        if op.ran:
            yield f"  users created: {op.users_created}, profiles created: {op.profiles_created}"


def render_markdown(result: MatrixResult) -> str:
    lines = [
        f"Measured by `manage.py signal_matrix --format markdown` on "
        f"{_heading(result, markdown=True)}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for op in result.operations:
        row = [_label(op, markdown=True), *cells(result, op)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines += ["", *(f"- {key}: {meaning}" for key, meaning in LEGEND)]
    lines += ["", _receivers_line(result, markdown=True)]
    if result.not_rolled_back:
        lines += ["", f"Not rolled back: {result.not_rolled_back}"]
    return "\n".join(lines)


def matrix_json(result: MatrixResult) -> dict[str, Any]:
    """The JSON object, for ``write_json`` (commands/render.py) to write as every command's."""
    return {
        "database": result.database,
        "vendor": result.vendor,
        "backend": result.backend,
        "django": result.django_version,
        "user_model": result.user_model,
        "receivers": [
            {"name": r.name, "signal": r.signal, "sender": r.sender, "state": r.state}
            for r in result.receivers
        ],
        "operations": [_operation_json(op) for op in result.operations],
        "not_rolled_back": result.not_rolled_back,
    }


def _operation_json(op: OperationResult) -> dict[str, Any]:
    signals: dict[str, list[dict[str, Any]] | None] = {}
    for name in SIGNALS:
        if name not in op.listened or not op.ran:
            signals[name] = None  # nobody listened: not measured
            continue
        signals[name] = [
            {"sender": event.sender, "count": count, **_json_arguments(event)}
            for event, count in grouped(op.events, name)
        ]
    return {
        "key": op.key,
        "operation": op.code,
        "variant": op.variant,
        "model": op.model,
        "unsupported": op.unsupported,
        "error": op.error,
        "signals": signals,
        "users_created": op.users_created,
        "profiles_created": op.profiles_created,
        "profile_created": op.profile_created,
        "fast_deleted": list(op.fast_deleted),
        "delete_listened_by_others": list(op.delete_listened_by_others),
    }


def _json_arguments(event: Event) -> dict[str, Any]:
    return {
        name: list(value) if isinstance(value, tuple) else value for name, value in event.arguments
    }
